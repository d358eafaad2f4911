"""carbonshift driving Kueue: a green-window AdmissionCheck and a MultiKueue dispatcher (docs/kueue.md).

Rooms beside the CarbonAwareJob controller, with the same decision core, signals, policies and
metrics; started only when the operator setting ``kueue.enabled`` is on.
"""
