"""Entry point of a deployment's server process: `python -m foundryctl.serving.run DIR`.

Apply starts it detached; it loads the model, serves on 127.0.0.1 until SIGTERM, and keeps
status.json current (Starting, Ready, Failed, Stopped) for plan and the CLI.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m foundryctl.serving.run DEPLOYMENT_DIR", file=sys.stderr)
        return 2
    from foundryctl.serving.deploydir import DeploymentDir
    from foundryctl.training.jobdir import process_start_time

    directory = DeploymentDir(Path(args[0]))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    log = logging.getLogger("foundryctl.serving")
    config = directory.read_pending() or directory.read_config()
    if config is None:
        print(f"no readable config.json in {directory.path}", file=sys.stderr)
        return 2
    directory.write_status(state="Starting", pid=os.getpid(), pid_start=process_start_time(os.getpid()),
                           port=config.port, model=config.model_id, error=None)
    try:
        import uvicorn

        from foundryctl.serving.app import create_app, load_runtime, warm_up

        log.info("loading %s (%s%s)", config.model_id, config.model_dir,
                 f" + adapter {config.adapter_dir}" if config.adapter_dir else "")
        runtime = load_runtime(config, directory)
        warm_up(runtime.engine)
    except Exception as exc:
        log.exception("the server could not start")
        directory.write_status(state="Failed", error=f"{type(exc).__name__}: {exc}")
        return 1

    app = create_app(directory, runtime)

    class Server(uvicorn.Server):
        async def startup(self, sockets=None):  # type: ignore[no-untyped-def]
            await super().startup(sockets)
            if self.started:
                directory.promote_pending()
                directory.write_status(state="Ready")
                log.info("serving %s on http://127.0.0.1:%d/v1", config.deployment, config.port)

        async def shutdown(self, sockets=None):  # type: ignore[no-untyped-def]
            # uvicorn re-raises SIGTERM after shutting down, so nothing after run() is reached.
            await super().shutdown(sockets)
            app.state.server.runtime.engine.close()
            directory.write_status(state="Stopped")

    from foundryctl.serving.httpserver import config as http_config

    server = Server(http_config(app, config.port))
    try:
        server.run()
    except SystemExit:  # uvicorn exits when it cannot bind
        if server.started:
            raise
    if not server.started:
        directory.write_status(state="Failed", error=f"could not listen on 127.0.0.1:{config.port} "
                               "(is another process using the port?)")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
