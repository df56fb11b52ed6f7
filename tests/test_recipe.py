"""Recipe parsing, validation, overrides and path resolution."""
from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import BaseModel, ConfigDict, Field

from colorbatch import registry
from colorbatch.errors import RecipeError
from colorbatch.plugins import make_plugin_manager
from colorbatch.recipe import SCHEMA_VERSION, build_plan, load_plan, parse_value
from colorbatch.steps import ItemStep, StepDef

RECIPES = Path(__file__).resolve().parent.parent / "recipes"


class TrainOpts(BaseModel):
    model_config = ConfigDict(extra="forbid")
    epochs: int = Field(1, description="epochs")
    batch_size: int = 8
    lr: float = 1e-3


class LoadOpts(BaseModel):
    model_config = ConfigDict(extra="forbid")
    source: str
    out: str = "{run_dir}/out"


class _Nop(ItemStep):
    def process(self, item):
        return item


REG = {
    "load": StepDef("load", lambda: LoadOpts, _Nop, path_options=("source", "out")),
    "train": StepDef("train", lambda: TrainOpts, _Nop),
}


def raw(**extra):
    base = {
        "schema_version": 1,
        "name": "t",
        "steps": [
            {"uses": "load", "with": {"source": "photos"}},
            {"uses": "train", "with": {"epochs": 2}},
        ],
    }
    base.update(extra)
    return base


def plan(r, **kw):
    return build_plan(r, REG, label="r.toml", base_dir=Path("/base"), **kw)


def test_valid_recipe_resolves_paths_against_recipe_folder():
    p = plan(raw(run_dir="runs/x"))
    assert [s.id for s in p.steps] == ["load", "train"]
    assert p.steps[0].options.source == str(Path("/base/photos"))
    assert p.run_dir == Path("/base/runs/x")
    # a {run_dir} default resolves inside the run folder
    assert p.steps[0].options.out == str(Path("/base/runs/x/out"))
    assert p.steps[1].options.epochs == 2


def test_three_mistakes_give_three_messages():
    r = raw()
    r["steps"][1]["with"] = {"batch_sise": 4, "epochs": "many"}
    r["steps"].append({"uses": "trian"})
    with pytest.raises(RecipeError) as e:
        plan(r)
    problems = e.value.problems
    assert len(problems) == 3, problems
    assert any("steps[2] (train).batch_sise: unknown option; did you mean batch_size?" in p for p in problems)
    assert any("steps[2] (train).epochs" in p and "integer" in p for p in problems)
    assert any("unknown step 'trian'; did you mean train?" in p and "available: load, train" in p for p in problems)


def test_missing_required_option_named():
    r = raw()
    r["steps"][0]["with"] = {}
    with pytest.raises(RecipeError) as e:
        plan(r)
    assert e.value.problems == ["r.toml: steps[1] (load).source: missing required option"]


def test_newer_schema_version_refused():
    with pytest.raises(RecipeError, match="newer than this colorbatch understands"):
        plan(raw(schema_version=SCHEMA_VERSION + 1))


def test_missing_schema_version_and_unknown_top_level_key():
    r = raw(nmae="x")
    del r["schema_version"]
    with pytest.raises(RecipeError) as e:
        plan(r)
    text = "\n".join(e.value.problems)
    assert "missing schema_version" in text
    assert "unknown top-level key 'nmae'; did you mean name?" in text


def test_overrides_by_uses_id_and_position():
    p = plan(raw(), overrides=["steps.train.epochs=5", "steps.1.source=other", "name=renamed"])
    assert p.steps[1].options.epochs == 5
    assert p.steps[0].options.source == str(Path("/base/other"))
    assert p.name == "renamed"
    p = plan(raw(), overrides=["steps.2.lr=0.5"])
    assert p.steps[1].options.lr == 0.5


def test_override_cannot_create_misspelt_key():
    with pytest.raises(RecipeError) as e:
        plan(raw(), overrides=["steps.train.epoch=1"])
    assert "steps[2] (train).epoch: unknown option; did you mean epochs?" in e.value.problems[0]
    with pytest.raises(RecipeError) as e:
        plan(raw(), overrides=["steps.tarin.epochs=1"])
    assert "no step 'tarin'; did you mean train?" in e.value.problems[0]
    with pytest.raises(RecipeError) as e:
        plan(raw(), overrides=["epochs"])
    assert "expected KEY=VALUE" in e.value.problems[0]


def test_duplicate_uses_need_ids_for_override():
    r = raw()
    r["steps"].append({"uses": "load", "with": {"source": "b"}})
    with pytest.raises(RecipeError) as e:
        plan(r, overrides=["steps.load.source=c"])
    assert "2 steps use 'load'; select one by id" in e.value.problems[0]
    p = plan(r, overrides=["steps.load3.source=c"])
    assert p.steps[2].options.source == str(Path("/base/c"))


@pytest.mark.parametrize(
    "text,value", [("1", 1), ("0.5", 0.5), ("true", True), ('"x y"', "x y"), ("[1, 2]", [1, 2]), ("abc", "abc")]
)
def test_parse_value(text, value):
    assert parse_value(text) == value


def test_bad_toml_and_missing_file(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("schema_version = = 1")
    with pytest.raises(RecipeError, match="bad.toml: invalid TOML"):
        load_plan(bad, REG)
    with pytest.raises(RecipeError, match="recipe file not found"):
        load_plan(tmp_path / "nope.toml", REG)


def test_every_shipped_recipe_validates():
    """Every recipe in recipes/ validates against the installed plugins."""
    pm = make_plugin_manager()
    reg = registry.steps(pm)
    recipes = sorted(RECIPES.glob("*.toml"))
    assert recipes, "recipes/ holds no recipe"
    for path in recipes:
        p = load_plan(path, reg)
        assert p.steps, path
