"""scripts/import_cycles.py: finds a cycle, even one closed by a function-local import, and pushsvc has none."""

from __future__ import annotations

from pathlib import Path

import pytest

from scripts.import_cycles import cycles


def test_a_cycle_closed_inside_a_function_is_found(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    package = tmp_path / "cyclic_demo"
    (package / "inner").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "inner" / "__init__.py").write_text("")
    (package / "a.py").write_text("from cyclic_demo.inner import b\n")
    (package / "inner" / "b.py").write_text("def late():\n    from cyclic_demo import c\n")
    (package / "c.py").write_text("import cyclic_demo.a\n")
    (package / "leaf.py").write_text("import cyclic_demo.a\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert cycles("cyclic_demo") == [["cyclic_demo.a", "cyclic_demo.c", "cyclic_demo.inner.b"]]


def test_pushsvc_has_no_import_cycle() -> None:
    assert cycles("pushsvc") == []
