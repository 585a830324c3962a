"""Calibration ("locate gratings") on synthetic images with a known rotation and ROI boxes."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from rigwatch.errors import CalibrationError
from rigwatch.pipeline.analysis.calibration import (
    ChipMap,
    Feature,
    FeatureLocations,
    calibrate,
    fit_similarity,
    load_chip_maps,
    load_feature_locations,
    locate_gratings,
)
from rigwatch.pipeline.analysis.images import rotate_points
from rigwatch.pipeline.analysis.roi_manifest import RoiManifest, load_roi_manifest
from rigwatch.pipeline.analysis.synthetic import (
    LABEL_MARK,
    ChipSpec,
    SyntheticGratingImage,
    SyntheticSpec,
    make_grating_image,
)

CHIP = ChipSpec(rows=10, cols=2, half_size=(24, 100), pitch=(48, 260))
CHIP_MAP = ChipMap.from_mapping(CHIP.chip_map())
TEMPLATE = np.pad(LABEL_MARK, 3)  # the mark on its background
GIVEN = ("R00C00", "R09C01", "R05C00")


def _image(angle: float, seed: int = 3) -> SyntheticGratingImage:
    spec = SyntheticSpec(shape=(560, 600), chip=CHIP, origin=(40, 40), angle_deg=angle)
    return make_grating_image(spec, seed=seed)


def _features(img: SyntheticGratingImage, error_px: float, seed: int) -> FeatureLocations:
    """The given labels as a user clicks them: each a few pixels off."""
    rng = np.random.default_rng(seed)
    out = []
    for label in GIVEN:
        x, y = img.label_positions[label]
        dx, dy = rng.uniform(-error_px, error_px, 2)
        out.append(Feature(label, x + dx, y + dy))
    return FeatureLocations("demo_chip", tuple(out))


def _max_box_error(got: RoiManifest, truth: RoiManifest) -> int:
    true = {roi.name: roi for roi in truth.rois}
    assert {roi.name for roi in got.rois} == set(true)
    worst = 0
    for roi in got.rois:
        t = true[roi.name]
        assert roi.flip == t.flip and roi.label == t.label
        worst = max(
            worst,
            abs(roi.row - t.row),
            abs(roi.col - t.col),
            abs(roi.height - t.height),
            abs(roi.width - t.width),
        )
    return worst


@pytest.mark.parametrize("use_all_labels", [True, False])
@pytest.mark.parametrize(("angle", "seed"), [(0.0, 1), (1.5, 2), (-2.3, 3)])
def test_calibration_recovers_rotation_and_roi_boxes_from_noisy_labels(
    angle: float, seed: int, use_all_labels: bool
) -> None:
    img = _image(angle, seed)
    features = _features(img, error_px=4.0, seed=seed)
    # the clicks are really off: the initial fit alone would misplace boxes
    off = [math.dist((f.x, f.y), img.label_positions[f.label]) for f in features.features]
    assert max(off) > 2.0
    result = locate_gratings(img.image, features, CHIP_MAP, TEMPLATE, use_all_labels=use_all_labels)
    assert result.manifest.image_angle == pytest.approx(angle, abs=0.1)
    assert result.transform.scale == pytest.approx(1.0, abs=2e-3)
    assert _max_box_error(result.manifest, img.manifest) <= 2
    n_labels = len(CHIP_MAP.labels) if use_all_labels else len(GIVEN)
    assert len(result.matches) == n_labels
    for m in result.matches:  # each label located within a pixel of the mark
        assert math.dist((m.x, m.y), img.label_positions[m.label]) < 1.0, m


def test_similarity_fit_is_exact_and_matches_the_rotation_convention() -> None:
    chip = np.array([[0.0, 0.0], [300.0, 10.0], [50.0, 420.0], [280.0, 400.0]])
    shape = (600, 700)
    angle, scale, origin = 2.0, 1.1, np.array([35.0, 20.0])
    image = rotate_points(origin + scale * chip, angle, shape)
    sim = fit_similarity(chip, image)
    assert sim.image_angle == pytest.approx(angle, abs=1e-9)
    assert sim.scale == pytest.approx(scale, rel=1e-12)
    np.testing.assert_allclose(sim.apply(chip), image, atol=1e-9)


def test_calibrate_writes_the_roi_manifest_and_a_picture(tmp_path: Path) -> None:
    img = _image(1.5)
    features = _features(img, error_px=3.0, seed=7)
    toml = "\n".join(
        ['chip_type = "demo_chip"']
        + [
            f'[[features]]\nlabel = "{f.label}"\nfeature_location = [{f.x}, {f.y}]'
            for f in features.features
        ]
    )
    (tmp_path / "Feature_locations.toml").write_text(toml)
    (tmp_path / "chips.json").write_text(json.dumps({"demo_chip": CHIP.chip_map()}))
    chip_maps = load_chip_maps(tmp_path / "chips.json")
    assert load_feature_locations(tmp_path / "Feature_locations.toml") == features
    result = calibrate(
        img.image, tmp_path / "Feature_locations.toml", chip_maps, TEMPLATE, tmp_path
    )
    written = load_roi_manifest(tmp_path / "ROI_manifest.json")
    assert written == result.manifest
    raw = json.loads((tmp_path / "ROI_manifest.json").read_text())
    assert raw["ROI_R00C00_2"].keys() == {"label", "flip", "coords", "size"}
    assert raw["ROI_R00C00_2"]["flip"] is True and raw["ROI_R00C00_1"]["flip"] is False
    assert raw["image_angle"] == pytest.approx(1.5, abs=0.1)
    with Image.open(tmp_path / "located_rois.png") as png:
        assert png.format == "PNG" and png.size == (600, 560)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary left


def _toml(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "Feature_locations.toml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("chip_type = [", "not valid TOML"),
        ('[[features]]\nlabel = "A"\nfeature_location = [1, 2]', "chip_type"),
        ('chip_type = "c"', r"\[\[features\]\]"),
        (
            'chip_type = "c"\n[[features]]\nlabel = "R00C00"\nfeature_location = [1, 2]',
            "at least two labels",
        ),
        (
            'chip_type = "c"\n[[features]]\nlabel = "R00C00"\nfeature_location = [1]\n'
            '[[features]]\nlabel = "R01C00"\nfeature_location = [1, 2]',
            r"features\[0\] \(R00C00\): feature_location",
        ),
        (
            'chip_type = "c"\n[[features]]\nfeature_location = [1, 2]\n'
            '[[features]]\nlabel = "R01C00"\nfeature_location = [1, 2]',
            r"features\[0\]: label",
        ),
        (
            'chip_type = "c"\n[[features]]\nlabel = "R00C00"\nfeature_location = [1, 2]\n'
            '[[features]]\nlabel = "R00C00"\nfeature_location = [5, 6]',
            "given twice",
        ),
    ],
)
def test_malformed_feature_locations_are_refused(tmp_path: Path, text: str, reason: str) -> None:
    with pytest.raises(CalibrationError, match=reason):
        load_feature_locations(_toml(tmp_path, text))


def test_missing_files_and_unknown_chip_type_are_refused(tmp_path: Path) -> None:
    with pytest.raises(CalibrationError, match="cannot read the feature locations"):
        load_feature_locations(tmp_path / "missing.toml")
    with pytest.raises(CalibrationError, match="cannot read the chip map"):
        load_chip_maps(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text('{"demo_chip": {"A": {"label": [1]}}}')
    with pytest.raises(CalibrationError, match="A: needs label"):
        load_chip_maps(tmp_path / "bad.json")
    path = _toml(
        tmp_path,
        'chip_type = "other_chip"\n[[features]]\nlabel = "R00C00"\nfeature_location = [1, 2]\n'
        '[[features]]\nlabel = "R01C00"\nfeature_location = [3, 4]',
    )
    img = _image(0.0)
    with pytest.raises(CalibrationError, match="unknown chip_type 'other_chip'; known: demo_chip"):
        calibrate(img.image, path, {"demo_chip": CHIP_MAP}, TEMPLATE, tmp_path)
    assert not (tmp_path / "ROI_manifest.json").exists()


def test_unknown_labels_and_templates_not_found_are_refused() -> None:
    img = _image(1.5)
    good = _features(img, error_px=2.0, seed=1)
    unknown = FeatureLocations(
        "demo_chip", (*good.features, Feature("Z99", 100.0, 100.0), Feature("Q1", 1.0, 1.0))
    )
    with pytest.raises(CalibrationError, match=r"labels not in the chip map.*Z99, Q1"):
        locate_gratings(img.image, unknown, CHIP_MAP, TEMPLATE)
    # R05C00 clicked in the empty space right of the chip: no mark there
    lost = FeatureLocations(
        "demo_chip", (good.features[0], good.features[1], Feature("R05C00", 560.0, 300.0))
    )
    with pytest.raises(CalibrationError, match=r"label R05C00: template not found near \(560"):
        locate_gratings(img.image, lost, CHIP_MAP, TEMPLATE)
    edge = FeatureLocations("demo_chip", (good.features[0], Feature("R09C01", 640.0, -30.0)))
    with pytest.raises(CalibrationError, match=r"R09C01 .* outside the image or too close"):
        locate_gratings(img.image, edge, CHIP_MAP, TEMPLATE)
    same = FeatureLocations("demo_chip", (Feature("R00C00", 50, 50), Feature("R09C01", 50, 50)))
    with pytest.raises(CalibrationError, match="positions coincide"):
        locate_gratings(img.image, same, CHIP_MAP, TEMPLATE)
    with pytest.raises(CalibrationError, match="non-constant"):
        locate_gratings(img.image, good, CHIP_MAP, np.ones((5, 5)))


def test_calibrate_command(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from rigwatch.pipeline.analysis.cli import app

    img = _image(-2.3)
    Image.fromarray(img.image).save(tmp_path / "image.png")
    Image.fromarray((TEMPLATE * 200).astype(np.uint8)).save(tmp_path / "label.png")
    (tmp_path / "chips.json").write_text(json.dumps({"demo_chip": CHIP.chip_map()}))
    features = _features(img, error_px=3.0, seed=4)
    (tmp_path / "Feature_locations.toml").write_text(
        'chip_type = "demo_chip"\n'
        + "".join(
            f'[[features]]\nlabel = "{f.label}"\nfeature_location = [{f.x}, {f.y}]\n'
            for f in features.features
        )
    )
    args = [
        str(tmp_path / "image.png"),
        "--features",
        str(tmp_path / "Feature_locations.toml"),
        "--chip-maps",
        str(tmp_path / "chips.json"),
        "--template",
        str(tmp_path / "label.png"),
        "--out-dir",
        str(tmp_path),
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "40 ROIs from 20 labels" in result.output
    manifest = load_roi_manifest(tmp_path / "ROI_manifest.json")
    assert manifest.image_angle == pytest.approx(-2.3, abs=0.1)
    (tmp_path / "chips.json").write_text("{")
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2 and "malformed chip map" in result.output
