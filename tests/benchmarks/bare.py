"""The floor's app: Falcon doing nothing but read the body and answer JSON."""

from __future__ import annotations

import falcon


class Bare:
    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        req.bounded_stream.read()
        resp.content_type = falcon.MEDIA_JSON
        resp.data = b'{"ok":true}'

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.content_type = falcon.MEDIA_JSON
        resp.data = b'{"ok":true}'


app = falcon.App()
app.add_route("/", Bare())
