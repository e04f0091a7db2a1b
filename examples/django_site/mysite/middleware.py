"""Shows which groupserver daemon group served a request (the X-Group response header)."""


class GroupHeaderMiddleware:
    """Copies environ['groupserver.group'] into an X-Group response header.

    groupserver puts the name of the group that serves a request in the WSGI environ; the
    header lets you (and tests/test_django_example.py) see the routing of site.yaml at work:
    `curl -sI http://127.0.0.1:8000/ | grep X-Group` says `volume`. Outside groupserver
    (runserver, another server) there is no such key and no header.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        group = request.META.get("groupserver.group")
        if group:
            response["X-Group"] = group
        return response
