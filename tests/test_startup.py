"""Start-up stays light: ``import synthbias.cli`` (and so ``synthbias --help``) loads no study,
task or measurement code, no SciPy sparse matrices and no torch or transformers; they load when
a command that needs them runs. The studies are registered by name
(:class:`synthbias.core.registry.Lazy`) and their config sections live in light modules.
"""

from __future__ import annotations

import json
import subprocess
import sys

#: Modules that a bare start-up must not import (each costs tenths of a second, or seconds).
HEAVY = (
    "synthbias.tasks",
    "synthbias.tasks.metrics",
    "synthbias.measure.misalignment",
    "synthbias.measure.api",
    "synthbias.mitigate",
    "synthbias.studies.inheritance",
    "synthbias.studies.attribution",
    "synthbias.studies.audit",
    "synthbias.studies.probe",
    "synthbias.studies.equilibrium.runner",
    "scipy.sparse",
    "torch",
    "transformers",
)


def _loaded_after(code: str) -> list[str]:
    probe = f"{code}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    loaded = set(json.loads(out.stdout.strip().splitlines()[-1]))
    return [m for m in HEAVY if m in loaded]


def test_cli_import_loads_no_heavy_code() -> None:
    assert _loaded_after("import synthbias.cli") == []


def test_config_and_api_imports_load_no_heavy_code() -> None:
    code = (
        "import synthbias.api, synthbias.config\n"
        "from synthbias.core.registry import STUDIES\n"
        "assert STUDIES.meta('inheritance')['section'] == 'inheritance'"
    )
    assert _loaded_after(code) == []


def test_help_runs_without_heavy_code() -> None:
    code = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from synthbias.cli import app\n"
        "for args in ([], ['measure'], ['audit'], ['run'], ['generate']):\n"
        "    res = CliRunner().invoke(app, [*args, '--help'])\n"
        "    assert res.exit_code == 0, res.output"
    )
    assert _loaded_after(code) == []


def test_help_of_the_console_entry_point_exits_0() -> None:
    # pyproject: synthbias = "synthbias.cli:app"
    code = "from synthbias.cli import app; app()"
    res = subprocess.run(
        [sys.executable, "-c", code, "--help"], capture_output=True, text=True, timeout=120
    )
    assert res.returncode == 0, res.stderr
    assert "run" in res.stdout and "measure" in res.stdout
    res = subprocess.run(
        [sys.executable, "-m", "synthbias.cli", "--help"], capture_output=True, text=True
    )
    assert res.returncode == 0, res.stderr


def test_a_study_loads_when_it_is_used() -> None:
    code = (
        "from synthbias.core.registry import STUDIES\n"
        "import synthbias.config\n"
        "assert callable(STUDIES.get('inheritance'))"
    )
    assert set(_loaded_after(code)) >= {"synthbias.studies.inheritance", "synthbias.tasks"}
