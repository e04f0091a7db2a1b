"""Fault injection, for tests that need a bug of ours to happen in a real server.

Only a test that puts this directory on PYTHONPATH loads it (Python imports `sitecustomize` at
start-up): the route decision then raises for the path /injected-fault, in the master and so in
the front and the workers it forks; and the master's plan for a group named `faulty` (built
before its every worker starts) raises.
"""

from groupserver import routing, worker

_route_for = routing.Router.route_for


def _failing_route_for(self, path, host=None, method="GET"):
    if path == "/injected-fault":
        raise RuntimeError("injected fault in Router.route_for")
    return _route_for(self, path, host, method)


routing.Router.route_for = _failing_route_for


_build = worker.GroupPlan.build.__func__


def _failing_build(cls, site, group):
    if group == "faulty":
        raise RuntimeError("injected fault in GroupPlan.build")
    return _build(cls, site, group)


worker.GroupPlan.build = classmethod(_failing_build)
