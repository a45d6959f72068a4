"""The fleet-scale benchmark (issue #9): simulated robots -> Mosquitto -> one gateway -> Kafka -> one
coordinator, with tasks flowing back down, in steps of fleet size; `run.run_bench` drives it."""

__all__: list[str] = []
