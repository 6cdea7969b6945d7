"""ordered_map: `map(func, items)` over worker processes, in order, that an interrupt cannot hang.

multiprocessing.Pool shares one task queue and one result queue among its workers, each guarded by a lock between
processes; a worker killed while it holds one (SIGTERM reaching the process group, Pool.terminate itself) can leave
Pool.terminate() waiting forever (CPython issues 96995, 73945). Here each worker has its own two pipes, one writer and
one reader each, so ending the workers is a SIGKILL and nothing else waits on them.
Chunk k of `items` goes to worker k % n and comes back from it in turn, so results keep the input order. A thread in
the parent iterates `items` and sends the chunks (so a slow or streaming source overlaps with encoding); at most
`depth` chunks per worker are in flight.
"""
import itertools
import multiprocessing
import pickle
import signal
import threading

from progan_tf.errors import RunError

_END = "end"


def ordered_map(func, items, workers, initializer, initargs=(), chunk=8, depth=4):
    """Yield func(item) for each item, in order, computed in `workers` fresh processes.

    Each worker first runs initializer(*initargs). An exception in func is raised here (as the worker raised it); one
    in iterating `items` is raised after the results before it.
    """
    context = _context(func.__module__)
    links, procs = [], []
    for _ in range(workers):
        task_read, task_write = context.Pipe(duplex=False)
        result_read, result_write = context.Pipe(duplex=False)
        proc = context.Process(target=_work, args=(func, initializer, initargs, task_read, result_write),
                               daemon=True, name="progan-prepare worker")
        proc.start()
        task_read.close()  # the worker's ends: held by the worker only, so its death reads as EOF here
        result_write.close()
        links.append((task_write, result_read))
        procs.append(proc)
    slots, stop, failure = threading.Semaphore(workers * depth), threading.Event(), []
    feeder = threading.Thread(target=_feed, args=(items, chunk, [t for t, _ in links], slots, stop, failure),
                              daemon=True, name="progan-prepare feeder")
    feeder.start()
    try:
        for k in itertools.count():
            message = _receive(links[k % workers][1], procs[k % workers])
            if message == _END:
                break
            slots.release()
            status, value = message
            if status == "error":
                raise value
            yield from value
        feeder.join()
        if failure:
            raise failure[0]
    finally:
        stop.set()
        slots.release(workers * depth + 1)  # wake the feeder if it waits for a slot
        for proc in procs:
            proc.kill()
        for proc in procs:
            proc.join()
        feeder.join(timeout=10)  # a send to a dead worker fails at once; `stop` ends the rest
        if not feeder.is_alive():  # else a slow source still holds it: closing could redirect its last send
            for task_write, result_read in links:
                task_write.close()
                result_read.close()


def _context(preload):
    """Workers never fork from this (multi-threaded: TensorFlow, tqdm) process.

    A plain fork can copy a lock another thread holds and hang the child; the forkserver imports `preload` (func's
    module) once in a clean process and forks the workers from there.
    """
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([__name__, preload])
    return context


def _receive(conn, proc):
    try:
        return conn.recv()
    except EOFError:
        proc.join(timeout=5)
        raise RunError(f"a {proc.name} died (exit code {proc.exitcode}); if it ran out of memory, "
                       "use fewer workers") from None


def _feed(items, chunk, task_writes, slots, stop, failure):
    """Send chunks round-robin, then the end marker to every worker; record an exception of `items`."""
    sent, batch = 0, []

    def send(message):  # False once the consumer has stopped
        nonlocal sent
        slots.acquire()
        if stop.is_set():
            return False
        task_writes[sent % len(task_writes)].send(message)
        sent += 1
        return True

    try:
        for item in items:
            batch.append(item)
            if len(batch) == chunk:
                if not send(batch):
                    return
                batch = []
    except Exception as e:  # noqa: BLE001 - re-raised in the consumer, after the results before it
        failure.append(e)
    try:
        if batch and not send(batch):
            return
        for task_write in task_writes:
            task_write.send(_END)
    except OSError:
        pass  # the consumer has stopped and closed the pipes


def _work(func, initializer, initargs, task_read, result_write):
    """A worker: the parent handles Ctrl-C and SIGTERM and ends the workers itself."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    initializer(*initargs)
    while True:
        batch = task_read.recv()
        if batch == _END:
            result_write.send(_END)
            return
        try:
            result_write.send(("ok", [func(item) for item in batch]))
        except Exception as e:  # noqa: BLE001 - sent to the consumer, which raises it
            result_write.send(("error", _picklable(e)))


def _picklable(error):
    try:
        pickle.loads(pickle.dumps(error))
        return error
    except Exception:  # noqa: BLE001 - any pickling failure: keep the message
        return RuntimeError(f"{type(error).__name__}: {error}")
