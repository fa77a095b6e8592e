"""Running a step on its own database connection, in a thread, for tests of what two transactions do at once."""

import threading

from django.db import connection


def in_thread(fn, *args, **kwargs):
    """Run ``fn`` on its own connection; ``.join()`` returns (result, exception)."""
    outcome = {}

    def run():
        try:
            outcome["result"] = fn(*args, **kwargs)
        except BaseException as exc:  # handed to the test
            outcome["error"] = exc
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()

    def join():
        thread.join(timeout=30)
        assert not thread.is_alive(), "the step hung"
        return outcome.get("result"), outcome.get("error")

    return join
