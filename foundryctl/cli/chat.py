"""`foundryctl chat DEPLOYMENT [QUESTION]`: talk to an endpoint the way a client does.

It sends OpenAI chat-completion requests with the deployment's key and streams the answer;
without a question it keeps a conversation going until an empty line or Ctrl-D.
"""

from __future__ import annotations

import json
import sys
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

import click

from foundryctl.cli.common import handle_errors, manifest_options


@click.command()
@manifest_options
@click.argument("deployment")
@click.argument("question", required=False)
@click.option("--system", "system_prompt", default=None, help="A system message before the conversation.")
@click.option("--max-tokens", type=click.IntRange(1), default=256, show_default=True)
@click.option("--temperature", type=click.FloatRange(0, 2), default=0.7, show_default=True)
@click.option("--seed", type=int, default=None, help="Same seed, same question: same answer.")
@click.option("--no-stream", is_flag=True, help="Wait for the whole answer instead of streaming it.")
@handle_errors
def chat(stack_args: dict[str, Any], deployment: str, question: str | None, system_prompt: str | None,
         max_tokens: int, temperature: float, seed: int | None, no_stream: bool) -> None:
    """Ask DEPLOYMENT a QUESTION, or chat interactively when no question is given."""
    from foundryctl.cli.deployments import deployment_keys, one_deployment
    from foundryctl.errors import FoundryctlError

    record, directory = one_deployment(stack_args, deployment)
    endpoint = record.outputs.get("endpoint")
    if not endpoint:
        raise FoundryctlError(f"{record.address} has no endpoint recorded; apply it first")
    client = _Client(endpoint, deployment_keys(stack_args, record, directory)["key1"])
    messages: list[dict[str, str]] = [{"role": "system", "content": system_prompt}] if system_prompt else []
    settings = {"max_tokens": max_tokens, "temperature": temperature, **({"seed": seed} if seed is not None else {})}
    interactive = question is None
    if interactive:
        click.echo(f"chatting with {record.name} at {endpoint} (empty line or Ctrl-D ends)", err=True)
    while True:
        if interactive:
            try:
                question = input("you> ").strip()
            except EOFError:
                click.echo(err=True)
                return
            if not question:
                return
        messages.append({"role": "user", "content": question or ""})
        answer = client.ask(messages, settings, stream=not no_stream, prefix="bot> " if interactive else "")
        if not interactive:
            return
        messages.append({"role": "assistant", "content": answer})


class _Client:
    def __init__(self, endpoint: str, key: str):
        self.url = endpoint.rstrip("/") + "/chat/completions"
        self.key = key

    def ask(self, messages: list[dict[str, str]], settings: dict[str, Any], *, stream: bool, prefix: str) -> str:
        from foundryctl.errors import FoundryctlError
        from foundryctl.serving import loopback

        body = json.dumps({"messages": messages, "stream": stream, **settings}).encode()
        request = urllib.request.Request(self.url, data=body, method="POST", headers={
            "Content-Type": "application/json", "Authorization": f"Bearer {self.key}"})
        # Our own servers on 127.0.0.1 bypass proxies; an Azure endpoint goes the usual way.
        local = urllib.parse.urlsplit(self.url).hostname in ("127.0.0.1", "localhost", "::1")
        try:
            response = (loopback.urlopen(request, timeout=600) if local
                        else urllib.request.urlopen(request, timeout=600))
        except urllib.error.HTTPError as exc:
            raise FoundryctlError(f"the endpoint answered {exc.code}: {_message(exc.read())}") from None
        except OSError as exc:
            raise FoundryctlError(f"cannot reach {self.url}: {exc}",
                                  hint="is it running? `foundryctl plan` shows a stopped endpoint; "
                                  "apply restarts it") from None
        sys.stdout.write(prefix)
        with response:
            if not stream:
                choice = json.loads(response.read())["choices"][0]
                text, reason = choice["message"]["content"] or "", choice["finish_reason"]
                sys.stdout.write(text)
            else:
                text, reason = self._stream(response)
        sys.stdout.write("\n")
        if reason == "content_filter":
            click.echo("[the rest of the answer was blocked by the content filter]", err=True)
        elif reason == "length":
            click.echo("[cut at --max-tokens]", err=True)
        return text

    @staticmethod
    def _stream(response: Any) -> tuple[str, str | None]:
        parts: list[str] = []
        reason = None
        for raw in response:
            line = raw.decode("utf-8").strip()
            if not line.startswith("data:"):
                continue
            data = line[5:].strip()
            if data == "[DONE]":
                break
            event = json.loads(data)
            if "error" in event:
                sys.stdout.write("\n")
                click.echo(f"error: {event['error'].get('message')}", err=True)
                break
            for choice in event.get("choices") or []:
                piece = (choice.get("delta") or {}).get("content")
                if piece:
                    parts.append(piece)
                    sys.stdout.write(piece)
                    sys.stdout.flush()
                reason = choice.get("finish_reason") or reason
        return "".join(parts), reason


def _message(body: bytes) -> str:
    try:
        return json.loads(body)["error"]["message"]
    except (ValueError, KeyError, TypeError):
        return body.decode("utf-8", "replace")[:500]
