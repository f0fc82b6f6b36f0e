"""featcodec's probes: frozen encoders, trainable necks, frozen task heads, task metrics.

Data flow: image → probes.encoders (frozen) → features → [codec] → probes.necks
→ probes.heads (frozen) → probes.tasks (metrics), with data from probes.data.
"""
