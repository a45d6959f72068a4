"""Store-and-forward: a durable, bounded, ordered on-disk queue for records the uplink could not take yet."""

from swarm_bridge.spool.spool import Spool, SpooledRecord, SpoolError, SpoolLimitError

__all__ = ["Spool", "SpoolError", "SpoolLimitError", "SpooledRecord"]
