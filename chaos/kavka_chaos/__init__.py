"""Kavka's fault-injection suite: a real cluster in network namespaces, a real client
workload with a recorded history, a seeded fault schedule, and invariant checks."""
