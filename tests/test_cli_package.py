"""The CLI's shape (issue 23): commands with few parameters, option groups packed into frozen
values, one model description for ``info`` and the service's ``/info``, and the checks the API
makes said by the API."""

from __future__ import annotations

import dataclasses
import inspect
import json

import click
import pytest
from click.testing import CliRunner

from lulc_edge import bundled_model
from lulc_edge.cli import COMMANDS, main
from lulc_edge.cli.options import ENGINE, TILING, EngineArgs, TilingArgs, use
from lulc_edge.describe import describe, served
from lulc_edge.errors import InputError, ModelError

from .conftest import run_cli


def test_every_command_function_takes_at_most_eight_parameters():
    """Options reach a command as frozen groups, not one keyword each (run had 28)."""
    assert {c.name for c in COMMANDS} == set(main.commands)
    for command in COMMANDS:
        params = inspect.signature(inspect.unwrap(command.callback)).parameters
        assert len(params) <= 8, (command.name, list(params))


def test_use_packs_a_commands_options_into_frozen_values():
    seen = {}

    @click.command()
    @click.argument("scene")
    @use(ENGINE, TILING)
    def toy(scene: str, engine: EngineArgs, tiling: TilingArgs) -> None:
        seen.update(scene=scene, engine=engine, tiling=tiling)

    res = CliRunner().invoke(toy, ["s.tif", "--device", "cpu", "--tile", "128",
                                   "--threads", "2"])
    assert res.exit_code == 0, res.output
    assert seen["scene"] == "s.tif"
    assert seen["engine"] == EngineArgs(model=None, device="cpu", precision="auto", threads=2)
    assert seen["engine"].engine_options().threads == 2
    assert seen["tiling"] == TilingArgs(mode="seamless", tile=128, batch=None)
    with pytest.raises(dataclasses.FrozenInstanceError):
        seen["tiling"].tile = 64
    # the ranges of lulc_edge.options still checked when the line is parsed
    bad = CliRunner().invoke(toy, ["s.tif", "--tile", "8"])
    assert bad.exit_code == 2 and "--tile" in bad.output


def test_info_json_is_describe_and_the_service_renders_the_same_description():
    doc = json.loads(run_cli("info", "--json").stdout)
    model = describe()
    for key in ("model", "sha256", "precision", "demo_weights", "trained_on", "bands",
                "classes", "nodata", "halo", "alignment", "window", "metadata"):
        assert doc[key] == json.loads(json.dumps(model[key], default=str)), key
    assert {"devices_available", "cpu", "auto", "versions"} <= set(doc)
    assert not {"devices_available", "auto"} & set(model)  # host=False: the model alone
    info = served(model, "cpu", "fp32")
    assert info["model"] == bundled_model().name  # no server path
    assert info["classes"][-1] == model["nodata"] and info["classes"][:-1] == model["classes"]
    assert (info["sha256"], info["demo_weights"]) == (model["sha256"], model["demo_weights"])


def test_the_api_refuses_what_the_cli_used_to_recheck(tmp_path):
    """describe() and read_map() say what is missing; the CLI only prints it."""
    with pytest.raises(ModelError, match="nope.onnx: model file not found"):
        describe(tmp_path / "nope.onnx")
    from lulc_edge.preview import read_map

    with pytest.raises(InputError, match="nope.tif: no such file"):
        read_map(tmp_path / "nope.tif")
    proc = run_cli("info", tmp_path / "nope.onnx")
    assert proc.returncode == 1 and proc.stderr.strip() == \
        f"lulc-edge: error: {tmp_path / 'nope.onnx'}: model file not found"


def test_the_service_answers_info_from_the_same_description(tmp_path):
    pytest.importorskip("uvicorn")
    from .test_serve import Server

    server = Server(tmp_path / "jobs")
    try:
        answer = server.get("/info").json()
    finally:
        server.stop()
    assert answer == json.loads(json.dumps(served(describe(), "cpu", "fp32")))
