"""Every node of a container on its own single-threaded executor in its own thread.

This is rclcpp's ``component_container_isolated`` in rclpy. A node's callbacks run one at a
time on its own thread, as in its own process, and each node runs beside the others. The
point is the cost at rest. rclpy's executors rebuild their whole wait set in Python on every
wake-up. A MultiThreadedExecutor over six nodes holds about 70 entities (each node's seven
parameter services count) and wakes two or three times per callback: once for the message,
then for its guard condition as the callback is taken and as it ends. Here a message wakes
only the node it is for, and that node's wait set has only its own dozen entities (issue 18).

The interface is the part of rclpy's Executor the container uses: ``add_node``, ``spin`` and
``shutdown``. ``spin`` returns when any node's thread ends: the context was shut down (Ctrl-C,
SIGTERM) or a callback raised. It then stops every other thread and raises the first error
(a SystemExit included) in the caller's thread, so that one failed node stops the container
as it does under the MultiThreadedExecutor.
"""
import threading

from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.task import Future, Task

JOIN_TIMEOUT_S = 5.0   # per thread, after the stop: a callback still running is left behind


class _NodeExecutor(SingleThreadedExecutor):
    """A SingleThreadedExecutor whose handlers do not wake it on taking and on finishing.

    rclpy's handler triggers the executor's guard condition twice per callback so that a
    multi-threaded executor re-adds the entity, and the rest of a mutually exclusive group, to
    its wait set. On one thread the handler runs inside spin_once and the next wait set is
    built after it anyway, so each trigger only costs one more wake-up and wait-set rebuild.
    Written against rclpy 7.1 (Jazzy, pinned in requirements.txt): _make_handler, _tasks.
    """

    def _make_handler(self, entity, node, take_from_wait_list):
        entity._executor_event = True   # not in the wait set until taken

        async def handler(entity, is_shutdown, work_tracker):
            if is_shutdown or not entity.callback_group.beginning_execution(entity):
                entity._executor_event = False
                return
            with work_tracker:
                call_coroutine = take_from_wait_list(entity)
                entity._executor_event = False
                try:
                    if call_coroutine is not None:
                        await call_coroutine()
                finally:
                    entity.callback_group.ending_execution(entity)

        task = Task(handler, (entity, self._is_shutdown, self._work_tracker), executor=self)
        with self._tasks_lock:
            self._tasks.append((task, entity, node))
        return task


class IsolatedExecutor:
    """One SingleThreadedExecutor and one thread per node; spin() until any of them ends."""

    def __init__(self):
        self._spins = []                 # (node, executor, stop future)
        self._ended = threading.Event()  # set by the first thread to end
        self._errors = []                # exceptions from the nodes' threads, first first
        self._errors_lock = threading.Lock()

    def add_node(self, node):
        """Give ``node`` its own executor (on the node's context)."""
        executor = _NodeExecutor(context=node.context)
        executor.add_node(node)
        self._spins.append((node, executor, Future()))
        return True

    def get_nodes(self):
        """The nodes added, in order."""
        return [node for node, _, _ in self._spins]

    def spin(self):
        """Spin every node until one thread ends; raise the first error of any of them."""
        threads = [threading.Thread(target=self._spin_one, args=(executor, stop),
                                    name=f'spin {node.get_name()}', daemon=True)
                   for node, executor, stop in self._spins]
        for thread in threads:
            thread.start()
        try:
            self._ended.wait()
        finally:
            self._stop_all()
            for thread in threads:
                thread.join(JOIN_TIMEOUT_S)
        with self._errors_lock:
            if self._errors:
                raise self._errors[0]

    def shutdown(self, timeout_sec=None):
        """Stop every thread and shut every executor down; True if all callbacks finished."""
        self._stop_all()
        finished = True
        for _, executor, _ in self._spins:
            finished = executor.shutdown(timeout_sec=timeout_sec) and finished
        return finished

    def _spin_one(self, executor, stop):
        try:
            executor.spin_until_future_complete(stop)
        except ExternalShutdownException:
            pass                          # the context was shut down: a normal stop
        except BaseException as error:    # noqa: BLE001 (SystemExit too: the caller decides)
            with self._errors_lock:
                self._errors.append(error)
        finally:
            self._ended.set()

    def _stop_all(self):
        # a done stop future makes spin_until_future_complete return at its next wake-up, and
        # setting it wakes the executor (its done callback)
        for _, _, stop in self._spins:
            if not stop.done():
                stop.set_result(None)
