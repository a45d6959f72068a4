"""The coordinator on one site's MQTT broker: one instance, state in memory (the Kafka runner is `kafka/`).

`runner` (SiteCoordinator: inputs, rounds, commands, the API), `wire` (topics and records, no sockets),
`state_file` (the task snapshot), `service` (the process), `client` (`task submit` and `fleet status`).
"""

__all__: list[str] = []
