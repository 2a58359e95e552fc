"""The code sandbox: persistent, isolated Python sessions for model-written code (see pool.py).

The words, used the same way in every file here: the *template* is the warm parent process
(``python -m kit.sandbox.worker``, numpy and sympy imported) that forks every *session process*,
an interpreter whose variables persist from cell to cell. In the kit, a ``Session`` (pool.py) is
a candidate's handle on its persistent interpreter; it outlives the session processes behind it
(a timeout or crash replaces the process, variables lost). A ``SessionProcess`` (process.py) is
the kit's view of one live session process: pid, pidfd, uid, directory, socket. Inside the
sandbox, ``_SessionServer`` (worker.py) is the session process's own side: it confines the
process, then serves its cells. ``ExecutorPool`` owns the template and every session process.
"Worker" names only the module ``kit.sandbox.worker``, the code that runs inside the sandbox.
"""
