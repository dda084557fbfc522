"""The teacher registry: built-ins registered by name, a teacher's section validated by its own
class, the serialised `teacher:` section unchanged, and the documented plugin teacher
(docs/examples/tail_words_teacher.py, one file) preparing a tiny dataset by name."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import nla_variants.config as config_module
import nla_variants.data.teachers.registry as registry
from nla_variants.common.errors import NLAError
from nla_variants.common.hashing import hash_text
from nla_variants.config import PrepareConfig, TeacherConfig, load_config
from nla_variants.data.prepare import prepare
from nla_variants.data.store import CONFIG, StoredDataset
from nla_variants.data.teachers.registry import make_teacher, teachers

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "docs" / "examples" / "tail_words_teacher.py"
GUIDE = ROOT / "docs" / "adding_a_variant.md"


def _yaml_hash(cfg: TeacherConfig) -> str:
    return hash_text(yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False), 16)


def test_the_teacher_section_dumps_as_before_teachers_registered():
    """Byte for byte what the section's fields gave (config.yaml, MLflow params, exports)."""
    assert list(TeacherConfig().model_dump()) == [
        "kind",
        "splits",
        "anthropic",
        "local",
        "next_tokens",
    ]
    assert _yaml_hash(TeacherConfig()) == "79845f53337b3e0d"
    written = {
        "kind": "local",
        "local": {"batch_size": 3},
        "anthropic": {"mode": "sync"},
        "next_tokens": 1,
    }
    assert _yaml_hash(TeacherConfig.model_validate(written)) == "50c4d9be366000be"
    again = TeacherConfig.model_validate(TeacherConfig.model_validate(written).model_dump())
    assert again.section().batch_size == 3 and again.section("anthropic").mode == "sync"


def test_builtins_are_registered_and_the_sdk_stays_unimported():
    assert {"heuristic", "local", "anthropic"} <= set(teachers())
    teacher = make_teacher(TeacherConfig(), 7, Path("unused"))
    assert teacher.fingerprint()["name"] == "heuristic" and teacher.fingerprint()["seed"] == 7
    # registering the Anthropic teacher does not import its SDK (an offline run never does)
    code = (
        "import sys; from nla_variants.data.teachers.registry import teachers; teachers(); "
        "assert 'anthropic' in teachers() and 'anthropic' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize(
    ("override", "match"),
    [
        ("teacher.kind=gpt", r"teacher\.kind: unknown teacher 'gpt'"),
        ("teacher.gpt.x=1", r"teacher\.gpt: unknown key"),
        ("teacher.local.batch_size=0", r"teacher\.local\.batch_size: Input should be greater"),
        ("teacher.heuristic.x=1", r"teacher\.heuristic: unknown key"),
    ],
)
def test_a_bad_teacher_section_is_one_line_naming_the_key(override, match):
    with pytest.raises(NLAError, match=match):
        load_config(None, PrepareConfig, [override])


@pytest.fixture
def example():
    """Import docs/examples/tail_words_teacher.py from its path (as a third party's module
    would be): it registers `tail_words` until the test ends."""
    teachers()
    before = (dict(registry._REGISTRY), dict(config_module.TEACHER_SECTIONS))
    spec = importlib.util.spec_from_file_location("nla_example_tail_words_teacher", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    yield module
    tables = (registry._REGISTRY, config_module.TEACHER_SECTIONS)
    for table, saved in zip(tables, before, strict=True):
        table.clear()
        table.update(saved)
    config_module._sections_model.cache_clear()


def test_the_example_teacher_prepares_a_dataset_by_name(
    example, tmp_path, tiny_model_dir, write_config
):
    assert teachers()["tail_words"].build is example.TailWordsTeacher
    teacher = {"kind": "tail_words", "tail_words": {"words": 3}}
    cfg = load_config(write_config(tmp_path, tiny_model_dir, teacher=teacher), PrepareConfig)
    assert cfg.teacher.section().words == 3
    with pytest.raises(NLAError, match=r"teacher\.tail_words\.words: Input should be less"):
        load_config(None, PrepareConfig, ["teacher.kind=tail_words", "teacher.tail_words.words=99"])

    ds = StoredDataset.open(prepare(cfg, progress=False).path)
    assert ds.sidecar["teacher"]["kind"] == "tail_words"
    assert ds.sidecar["teacher"]["fingerprint"] == {"name": "tail_words", "words": 3, "version": 1}
    rows = [r for r in ds.table().to_pylist() if r["split"] in cfg.teacher.splits]
    assert rows and all(r["explanation"] for r in rows)
    first = rows[0]["explanation"].splitlines()
    assert re.fullmatch(r"A text of about \d+ words\.", first[0])
    assert re.fullmatch(r"It ends with the words( \w+){1,3}\.", first[1])
    # the dataset's config.yaml holds the plugin's section beside the built-ins'
    written = yaml.safe_load((ds.path / CONFIG).read_text())["teacher"]
    assert list(written) == ["kind", "splits", "anthropic", "local", "tail_words", "next_tokens"]
    assert written["tail_words"] == {"words": 3}


def test_the_guide_shows_the_example_teacher_verbatim():
    blocks = re.findall(r"```python\n(.*?)```", GUIDE.read_text(), flags=re.S)
    assert EXAMPLE.read_text() in blocks


def test_the_guide_lists_every_ctx_field():
    """The guide's `ctx` tables name every field of the context a variant and a teacher get."""
    from dataclasses import fields

    from nla_variants.data.teachers.registry import TeacherContext
    from nla_variants.variants.registry import BuildContext

    listed = set(re.findall(r"^\| `ctx\.(\w+)` \|", GUIDE.read_text(), flags=re.M))
    for context in (BuildContext, TeacherContext):
        assert {f.name for f in fields(context)} <= listed, context.__name__
