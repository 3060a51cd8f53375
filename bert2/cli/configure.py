"""`bert2 config show | init | validate`: the configuration as TOML with every field's meaning."""

from __future__ import annotations

import argparse
import os
from typing import Any

from ..config import DEFAULT_CONFIG_FILE, Config, preset
from .common import UsageError, add_common, command, load, print_json


def cmd_config(args: argparse.Namespace) -> int:
    if args.action == "init":
        target = args.output or DEFAULT_CONFIG_FILE
        if os.path.exists(target) and not args.force:
            raise UsageError(f"{target} exists; pass --force to overwrite")
        cfg = preset(args.preset) if args.preset else Config()
        cfg = cfg.with_overrides(list(args.set or []))
        cfg.save(target)
        print(f"wrote {target}")
        return 0
    cfg = load(args)  # validates: raises ConfigError with every field error
    if args.action == "validate":
        print("config is valid")
        return 0
    if args.json:
        print_json(cfg.to_dict())
        return 0
    print(cfg.to_toml())  # the same text `config init` writes: each field's help above it
    return 0


def add_parsers(sub: Any) -> None:
    p = command(
        sub,
        "config",
        "show, init or validate the configuration",
        "show: every setting with its help (TOML); init: write it to bert2.toml (or -o FILE) to edit;\n"
        "validate: check a file and the --set overrides, naming each bad field.",
        ("bert2 config show", "bert2 config init --preset mini", "bert2 --config my.toml config validate"),
    )
    p.add_argument("action", choices=["show", "init", "validate"])
    add_common(p, preset_choice=True)
    p.add_argument("--json", action="store_true", help="show as JSON")
    p.add_argument("--output", "-o", metavar="FILE", help=f"init: where to write (default {DEFAULT_CONFIG_FILE})")
    p.add_argument("--force", action="store_true", help="init: overwrite an existing file")
    p.set_defaults(func=cmd_config)
