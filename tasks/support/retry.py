"""When a failed task is worth another try."""

from __future__ import annotations

from policies.errors import QresError

__all__ = ["retry_on_io_error"]


def retry_on_io_error(task, task_run, state) -> bool:
    """Retry transient IO failures only; bad data fails at once."""
    try:
        state.result()
    except QresError:
        return False
    except OSError:
        return True
    except Exception:  # noqa: BLE001 - anything else is a bug: do not retry it
        return False
    return False
