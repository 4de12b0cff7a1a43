"""``ragprune serve``: the HTTP rerank + prune server (``ragprune.server``) under uvicorn."""

from __future__ import annotations

import argparse

from ragprune.cli.model_options import add_model_options, load_pruner
from ragprune.cli.options import port_number, positive_int

# ``ragprune.server.ServerLimits`` fields settable as --max-...; unset options keep the server's defaults.
LIMIT_OPTIONS = {
    "max_documents": "documents per request",
    "max_document_chars": "characters per document",
    "max_query_chars": "characters of the query",
    "max_request_chars": "characters of query + documents per request",
    "max_request_bytes": "bytes of the JSON request body",
    "max_batch_size": "(query, document) pairs gathered into one model call",
    "max_pending": "requests waiting for the model before the server answers 429",
}


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "serve",
        help="serve rerank and prune over HTTP",
        description="HTTP server: POST /v1/rerank and /v2/rerank (Cohere/Jina rerank shape), POST /rerank "
        "(text-embeddings-inference shape), POST /v1/prune (scores, kept spans, pruned text), GET /health "
        "(model, limits, batching counters), GET /info (TEI's model info). Concurrent requests are batched "
        "onto the model; bad input gets a 4xx naming the field. Needs the serve extra: "
        "pip install 'ragprune[serve]'.",
    )
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)"
    )
    parser.add_argument("--port", type=port_number, default=8080, help="port to listen on (default 8080)")
    for field, what in LIMIT_OPTIONS.items():
        parser.add_argument(
            f"--{field.replace('_', '-')}",
            type=positive_int,
            default=None,
            help=f"most {what} (default: see GET /health)",
        )
    parser.add_argument(
        "--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"]
    )
    add_model_options(parser)
    return parser


def run(args: argparse.Namespace) -> int:
    from ragprune.cli import UserError

    try:
        import uvicorn

        from ragprune.server import ServerLimits, create_app
    except ImportError as error:
        raise UserError(f"ragprune serve needs {error.name}: pip install 'ragprune[serve]'") from error
    from pathlib import Path

    check_address(args.host, args.port)  # before the model loads, so a taken port fails at once
    chosen = {field: getattr(args, field) for field in LIMIT_OPTIONS if getattr(args, field) is not None}
    pruner = load_pruner(args)
    model_name = Path(args.model).name if args.model else "ragprune-default"
    app = create_app(pruner, limits=ServerLimits(**chosen), model_name=model_name)
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level)
    return 0


def check_address(host: str, port: int) -> None:
    """A ``UserError`` when this process cannot listen on ``host:port`` (unknown host, port taken)."""
    import socket

    from ragprune.cli import UserError

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except (OSError, UnicodeError) as error:
        raise UserError(f"--host {host}: not an address of this machine ({error})") from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as error:
            raise UserError(
                f"cannot listen on {host}:{port} ({error.strerror}); choose another --port "
                "(or stop the program using it)"
            ) from None
