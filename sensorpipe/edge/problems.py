"""The edge agent's repeated-problem log: shared with the ingest, it lives in the protocol
package (`sensorpipe.protocol.problems`)."""

from sensorpipe.protocol.problems import RepeatedProblem

__all__ = ["RepeatedProblem"]
