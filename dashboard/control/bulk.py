"""A bulk revoke that acts: runs in the background and reports progress on its audit record.

The page polls /api/v1/audit/<id> while it runs; the record always ends in a final state
(ok or error), whatever happens to the job.
"""
from __future__ import annotations

from lookout.dashboard.web.errors import ApiError


class BulkRevoke:
    """One bulk revoke: batches through the service, progress onto its audit record."""

    def __init__(self, service, audit, record_id, ids, terminate, signal, params):
        self.service, self.audit, self.record_id = service, audit, record_id
        self.ids, self.terminate, self.signal, self.params = ids, terminate, signal, params

    def _progress(self, done: int, replies: list[dict]) -> None:
        self.params["progress"] = {"done": done, "total": len(self.ids)}
        self.audit.update(self.record_id, parameters=self.params, replies=replies)

    def run(self) -> None:
        try:
            self.service.bulk_revoke(self.ids, self.terminate, self.signal, self._progress)
            self.audit.update(self.record_id, outcome="ok", status=200)
        except ApiError as exc:
            self.audit.update(self.record_id, outcome="error", status=exc.status,
                              message=exc.message)
        except Exception as exc:  # noqa: BLE001 - a job must always leave a final state
            self.audit.update(self.record_id, outcome="error", status=500,
                              message=f"{type(exc).__name__}: {exc}")
