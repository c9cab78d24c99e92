import pytest
import yaml

from tipr.training.model_card import public_path, render_model_card


@pytest.mark.parametrize("value, shown", [
    ("/home/me/data/CUHK-PEDES", "CUHK-PEDES"),
    ("/srv/runs/pretrain-run/", "pretrain-run"),
    ("runs/ecca", "runs/ecca"),  # relative: as the user typed it
    ("openai", "openai"),
    ("hf-hub:org/tipr-ecca", "hf-hub:org/tipr-ecca"),
    (64, 64),
    (None, None),
])
def test_public_path_shows_a_local_absolute_path_by_its_name(value, shown):
    assert public_path(value) == shown


def test_card_has_no_local_paths_and_its_front_matter_parses():
    card = render_model_card(method="ecca", dataset="cuhk-pedes", setting="medium",
                             hyperparameters={"data_root": "/home/me/data/CUHK-PEDES", "learning_rate": 1e-4,
                                              "output_dir": "/srv/runs/ecca"},
                             results={"test": {"R1": 61.5, "R5": 80.25, "R10": 86.0, "mAP": 55.125, "mINP": 40.0}},
                             base_model="ViT-B-16 (openai)")
    front = yaml.safe_load(card.split("---\n")[1])
    assert front["datasets"] == ["CUHK-PEDES"] and front["base_model"] == "ViT-B-16 (openai)"
    assert "/home/me" not in card and "/srv" not in card
    assert "| `data_root` | `CUHK-PEDES` |" in card and "| `learning_rate` | `0.0001` |" in card
    assert "| test | 61.50 | 80.25 | 86.00 | 55.12 | 40.00 |" in card
