"""The coordinator on Kafka: sharded instances, each round one transaction (the single-site runner is `site/`).

`runner` (CoordinatorInstance: the group, the view, one round), `view` (folding state, presence and task events),
`topics` (reachability and topic checks before the start), `records` (the wire records), `service` (the
process), `snapshot` (`fleet status` and `task submit` straight on Kafka).
"""

__all__: list[str] = []
