"""The web application: JSON API under /api, pages rendered with Jinja2. The ground truth is never served.

Public: ``/``, ``/leaderboard``, ``/leaderboard.json`` and ``/api/healthcheck``. Everything else needs a
user's key: ``Authorization: Bearer KEY`` (or ``User-Key: KEY``) on API calls, or
the cookie that ``/login`` sets for pages.
"""
from __future__ import annotations

import logging
import math
import os
import tempfile
from pathlib import Path
from typing import Any

from fastapi import Body, FastAPI, File, Form, HTTPException, Request, UploadFile
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from vosbench.errors import VosbenchError
from vosbench.server import submissions as subs
from vosbench.server.config import ServerConfig
from vosbench.server.db import Database, Status, User
from vosbench.server.queue import Queue, make_queue
from vosbench.server.interactive import ProtocolError
from vosbench.server.uploads import UploadError
from vosbench.server.users import AuthError, authenticate
from vosbench.tracks.params import Track
from vosbench.tracks.result import GLOBAL_COLUMNS

log = logging.getLogger(__name__)

TEMPLATES = Path(__file__).resolve().parent / "templates"
COOKIE = "vosbench_key"
UPLOAD_PATHS = ("/api/submissions", "/submissions")


class BodyTooLarge(HTTPException):
    """Raised while a request body is read, as an HTTPException so that FastAPI's body parsing passes it on."""

    def __init__(self, limit: int):
        super().__init__(status_code=413, detail=f"the upload is larger than this server accepts ({limit} bytes).")


class UploadLimit:
    """ASGI middleware: refuse a request body past `limit` bytes with 413, counted as it arrives
    (a Content-Length over the limit is refused before anything is read)."""

    def __init__(self, app, limit: int):
        self.app = app
        self.limit = limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] not in ("POST", "PUT"):
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        message = {"error": "UploadError",
                   "message": [f"the upload is larger than this server accepts ({self.limit} bytes)."]}
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            return await JSONResponse(message, status_code=413)(scope, receive, send)
        seen = 0
        started = False

        async def counted_receive():
            nonlocal seen
            event = await receive()
            if event["type"] == "http.request":
                seen += len(event.get("body", b""))
                if seen > self.limit:
                    raise BodyTooLarge(self.limit)
            return event

        async def tracked_send(event):
            nonlocal started
            if event["type"] == "http.response.start":
                started = True
            await send(event)

        try:
            await self.app(scope, counted_receive, tracked_send)
        except BodyTooLarge:
            if not started:
                await JSONResponse(message, status_code=413)(scope, receive, send)


def _local(path: str) -> str:
    """A redirect target on this server only (no open redirects)."""
    if not path.startswith("/") or path.startswith("//") or "\\" in path:
        return "/submissions"
    return path


def _clean(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value


def error_json(exc: Exception, status: int) -> JSONResponse:
    """The error shape of the DAVIS interactive server, which its client re-raises:
    ``{"error": <exception class name>, "message": [text]}``."""
    return JSONResponse({"error": type(exc).__name__, "message": [str(exc)],
                         **({"problems": exc.problems} if isinstance(exc, subs.InvalidSubmission) else {})},
                        status_code=status)


def create_app(config: ServerConfig, *, db: Database | None = None, queue: Queue | None = None,
               migrate: bool = True) -> FastAPI:
    db = db or Database(config.database_url)
    if migrate:
        db.upgrade()
    queue = queue or make_queue(config, db)
    benchmark = subs.Benchmark(config)
    interactive = None
    if config.interactive_gt is not None:
        from vosbench.server.interactive import InteractiveTrack

        interactive = InteractiveTrack(config, db)
    templates = Jinja2Templates(directory=str(TEMPLATES))
    app = FastAPI(title=config.title, docs_url=None, redoc_url=None, openapi_url="/api/openapi.json")
    app.state.config, app.state.db, app.state.queue, app.state.benchmark = config, db, queue, benchmark

    def page(request: Request, name: str, status_code: int = 200, **context) -> HTMLResponse:
        nav = [t.value for t in config.tracks] + (["interactive"] if interactive is not None else [])
        context.update(request=request, title=config.title, tracks=[t.value for t in config.tracks], nav_tracks=nav,
                       columns=GLOBAL_COLUMNS, dataset=config.dataset.value, split=config.split)
        return templates.TemplateResponse(request, name, context, status_code=status_code)

    def api_user(request: Request) -> User:
        auth = request.headers.get("authorization", "")
        key = auth[7:].strip() if auth.lower().startswith("bearer ") else None
        return authenticate(db, key or request.headers.get("user-key") or request.cookies.get(COOKIE))

    def page_user(request: Request) -> User | None:
        try:
            return api_user(request)
        except AuthError:
            return None

    def wants_html(request: Request) -> bool:
        return not request.url.path.startswith("/api/") and request.url.path != "/leaderboard.json"

    @app.exception_handler(AuthError)
    async def _auth(request: Request, exc: AuthError):
        if wants_html(request):
            return page(request, "login.html", status_code=401, message=str(exc),
                        next=_local(request.url.path) if request.url.path != "/login" else "/submissions")
        return error_json(exc, 401)

    @app.exception_handler(subs.NotFound)
    async def _not_found(request: Request, exc: subs.NotFound):
        if wants_html(request):
            return page(request, "error.html", status_code=404, message=str(exc))
        return error_json(exc, 404)

    @app.exception_handler(ProtocolError)
    async def _protocol(request: Request, exc: ProtocolError):
        return JSONResponse({"error": exc.name, "message": [str(exc)]}, status_code=400)

    @app.exception_handler(UploadError)
    async def _upload(request: Request, exc: UploadError):
        return error_json(exc, exc.status)

    @app.exception_handler(subs.LimitReached)
    async def _limit(request: Request, exc: subs.LimitReached):
        return error_json(exc, 429)

    @app.exception_handler(VosbenchError)
    async def _vosbench(request: Request, exc: VosbenchError):
        status = 422 if isinstance(exc, subs.InvalidSubmission) else 400
        if wants_html(request):
            return page(request, "error.html", status_code=status, message=str(exc),
                        problems=getattr(exc, "problems", None))
        return error_json(exc, status)

    def _store_upload(upload: UploadFile) -> tuple[Path, int]:
        config.data_dir.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix="upload-", suffix=".zip", dir=config.data_dir)
        size = 0
        with os.fdopen(fd, "wb") as out:
            while chunk := upload.file.read(1024 * 1024):
                size += len(chunk)
                if size > config.limits.max_upload_bytes:
                    out.close()
                    os.unlink(name)
                    raise UploadError(f"the upload is larger than this server accepts "
                                      f"({config.limits.max_upload_bytes} bytes).", 413)
                out.write(chunk)
        return Path(name), size

    def _submit(user: User, upload: UploadFile, track: str, method: str):
        path, size = _store_upload(upload)
        try:
            row = subs.accept_upload(config, db, benchmark, user, path, size, track, method)
        finally:
            path.unlink(missing_ok=True)
        queue.enqueue(row.id)
        return row

    # -- API -------------------------------------------------------------------------------
    @app.get("/api/healthcheck")
    def healthcheck():
        """Public: the DAVIS interactive client calls it, without a key, before anything else."""
        return {"health": "OK"}

    @app.get("/api/me")
    def me(request: Request):
        user = api_user(request)
        return {"name": user.name, "admin": user.is_admin, "daily_limit": user.daily_limit
                if user.daily_limit is not None else config.limits.daily_submissions}

    @app.post("/api/submissions", status_code=201)
    def api_submit(request: Request, file: UploadFile = File(...), track: str = Form("semi"),
                   method: str = Form("")):
        user = api_user(request)
        row = _submit(user, file, track, method)
        return JSONResponse(_clean(subs.submission_json(config, subs.own_submission(db, user, row.id))),
                            status_code=201, headers={"Location": f"/api/submissions/{row.id}"})

    @app.get("/api/submissions")
    def api_list(request: Request):
        user = api_user(request)
        return _clean([subs.submission_json(config, row) for row in subs.list_own(db, user)])

    @app.get("/api/submissions/{submission_id}")
    def api_get(request: Request, submission_id: int):
        user = api_user(request)
        return _clean(subs.submission_json(config, subs.own_submission(db, user, submission_id), detail=True))

    @app.post("/api/submissions/{submission_id}/choose")
    def api_choose(request: Request, submission_id: int):
        user = api_user(request)
        return _clean(subs.submission_json(config, subs.choose(db, user, submission_id)))

    # -- interactive track: the DAVIS interactive remote protocol ----------------------------------
    def track_of(request: Request):
        if interactive is None:
            raise ProtocolError("this server runs no interactive track (start it with --interactive-gt).",
                                "RuntimeError")
        return interactive, api_user(request), request.headers.get("session-key")

    @app.get("/api/dataset/samples")
    def samples(request: Request):
        track, user, key = track_of(request)
        return track.start(user, key)

    @app.get("/api/dataset/scribbles/{sequence}/{index}")
    def scribble(request: Request, sequence: str, index: str):
        track, user, key = track_of(request)
        if not index.isdigit():
            raise ProtocolError(f"scribble index {index!r} is not a number.")
        return track.first_scribble(user, key, sequence, int(index))

    @app.post("/api/evaluation/interaction")
    def interaction(request: Request, body: dict = Body(...)):
        track, user, key = track_of(request)
        return track.interaction(user, key, body)

    @app.get("/api/evaluation/report")
    def report(request: Request):
        track, user, key = track_of(request)
        table = track.report(user, key)
        return {column: table[column].tolist() for column in table.columns}

    @app.post("/api/evaluation/finish")
    def finish(request: Request):
        track, user, key = track_of(request)
        return _clean(track.finish(user, key))

    def interactive_board() -> dict:
        if interactive is None:
            raise UploadError("this server runs no interactive track.")
        p = interactive.params
        return {"title": config.title, "dataset": "davis2017", "split": config.interactive_split,
                "track": "interactive", "threshold": p.threshold,
                "protocol": p.describe(),
                "columns": ["AUC", f"J&F@{p.threshold:g}s", "interactions", "client_seconds", "server_seconds"],
                "rows": interactive.leaderboard()}

    @app.get("/leaderboard.json")
    def leaderboard_json(track: str = "semi"):
        if track == "interactive":
            return _clean(interactive_board())
        t = benchmark.track(track)
        return _clean({"title": config.title, "dataset": config.dataset.value, "split": config.split,
                       "track": t.value, "protocol": benchmark.describe(t), "columns": GLOBAL_COLUMNS,
                       "rows": subs.leaderboard(db, t)})

    # -- pages -----------------------------------------------------------------------------
    @app.get("/", response_class=HTMLResponse)
    def index(request: Request):
        boards = {t.value: subs.leaderboard(db, t) for t in config.tracks}
        return page(request, "index.html", user=page_user(request), boards=boards)

    @app.get("/leaderboard", response_class=HTMLResponse)
    def leaderboard_page(request: Request, track: str = "semi"):
        if track == "interactive":
            board = interactive_board()
            return page(request, "interactive.html", board=board, user=page_user(request))
        t = benchmark.track(track)
        return page(request, "leaderboard.html", track=t.value, protocol=benchmark.describe(t),
                    rows=subs.leaderboard(db, t), user=page_user(request))

    @app.get("/leaderboard/interactive.png")
    def interactive_plot():
        from vosbench.reports.plots import interactive_curves, png_bytes

        board = interactive_board()
        curves = {f"{r['rank']}. {r['user']}": r["curve"] for r in board["rows"]}
        return Response(png_bytes(interactive_curves(curves, threshold=board["threshold"])), media_type="image/png",
                        headers={"Cache-Control": "no-store"})

    @app.get("/login", response_class=HTMLResponse)
    def login_page(request: Request, next: str = "/submissions"):
        return page(request, "login.html", message="", next=_local(next))

    @app.post("/login")
    def login(request: Request, key: str = Form(...), next: str = Form("/submissions")):
        authenticate(db, key)
        response = RedirectResponse(_local(next), status_code=303)
        # Lax: sent on links to the site, never on another site's POST (no cross-site submissions).
        response.set_cookie(COOKIE, key, httponly=True, samesite="lax", secure=request.url.scheme == "https")
        return response

    @app.post("/logout")
    def logout():
        response = RedirectResponse("/", status_code=303)
        response.delete_cookie(COOKIE)
        return response

    @app.get("/submissions", response_class=HTMLResponse)
    def submissions_page(request: Request):
        user = api_user(request)
        return page(request, "submissions.html", user=user, rows=subs.list_own(db, user))

    @app.post("/submissions")
    def submit_page(request: Request, file: UploadFile = File(...), track: str = Form("semi"),
                    method: str = Form("")):
        user = api_user(request)
        row = _submit(user, file, track, method)
        return RedirectResponse(f"/submissions/{row.id}", status_code=303)

    @app.get("/submissions/{submission_id}", response_class=HTMLResponse)
    def submission_page(request: Request, submission_id: int):
        user = api_user(request)
        row = subs.own_submission(db, user, submission_id)
        table = subs.per_sequence(config, row) if row.status == Status.DONE else None
        return page(request, "submission.html", user=user, row=row, scores=_clean(row.scores),
                    per_sequence=None if table is None else _clean(table.to_dict(orient="records")),
                    protocol=benchmark.describe(Track(row.track)))

    @app.get("/submissions/{submission_id}/sequences.png")
    def submission_plot(request: Request, submission_id: int):
        user = api_user(request)
        row = subs.own_submission(db, user, submission_id)
        path = config.submission_dir(row.id) / "scores" / "sequences.png"
        if not path.exists():
            return Response(status_code=404)
        return FileResponse(path, media_type="image/png")

    @app.exception_handler(BodyTooLarge)
    async def _too_large(request: Request, exc: BodyTooLarge):
        return JSONResponse({"error": "UploadError", "message": [exc.detail]}, status_code=413)

    # The body of a multipart upload is a little larger than the file it carries.
    app.add_middleware(UploadLimit, limit=config.limits.max_upload_bytes + 64 * 1024)
    return app
