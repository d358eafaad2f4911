"""The operator: a thin Kopf shell and a scheduling cycle around the pure decision core.

Layers (each module has one job):
- ``clock``, ``settings``: injected time and the operator's own configuration;
- ``manifests``, ``validation``, ``translate``, ``status``: pure functions, no I/O;
- ``kube``, ``members``, ``signalhub``, ``events``, ``leader``, ``metrics``: I/O at the edges;
- ``cycle``: one scheduling cycle (snapshot -> plan -> act), the only place that combines them;
- ``handlers``, ``command``: Kopf registration and the ``carbonshift run`` entry point.
"""
