"""Grating resonance analysis on synthetic images with known resonance positions."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from rigwatch.errors import AnalysisError, ImageError, RoiManifestError
from rigwatch.pipeline.analysis import create_plugin, linefits
from rigwatch.pipeline.analysis.grating import (
    POSITION_OUTPUT,
    analyse_image,
    cut_rois,
    statistics,
)
from rigwatch.pipeline.analysis.images import (
    normalise_uint8,
    normaliser,
    read_image,
    rotate_image,
    rotated_blocks,
    summarise,
)
from rigwatch.pipeline.analysis.roi_manifest import load_roi_manifest, write_roi_manifest
from rigwatch.pipeline.analysis.synthetic import (
    ChipSpec,
    SyntheticGratingImage,
    SyntheticSpec,
    make_grating_image,
)
from support.grating_reference import analyse_per_row, row_result

CHIP = ChipSpec(rows=10, cols=2, half_size=(24, 100), pitch=(48, 260))


def _image(line: str, angle: float, seed: int = 3) -> SyntheticGratingImage:
    spec = SyntheticSpec(
        shape=(560, 600),
        chip=CHIP,
        origin=(40, 40),
        line=line,
        angle_deg=angle,  # type: ignore[arg-type]
    )
    return make_grating_image(spec, seed=seed)


@pytest.fixture(scope="module")
def images() -> dict[tuple[str, float], SyntheticGratingImage]:
    return {(line, a): _image(line, a) for line in ("gaussian", "fano") for a in (0.0, 1.5)}


CASES = [
    # (line shape, method, what the method measures)
    ("gaussian", "max_intensity", "peak"),
    ("gaussian", "centre", "peak"),
    ("gaussian", "gaussian", "peak"),
    ("fano", "fano", "resonance"),
    ("fano", "max_intensity", "peak"),
]


@pytest.mark.parametrize("angle", [0.0, 1.5])
@pytest.mark.parametrize(("line", "method", "target"), CASES)
def test_each_method_recovers_the_known_position_within_half_a_pixel(
    images: dict[tuple[str, float], SyntheticGratingImage],
    line: str,
    method: str,
    target: str,
    angle: float,
) -> None:
    img = images[line, angle]
    result = analyse_image(img.image, img.manifest, method)
    assert len(result.rois) == 2 * CHIP.rows * CHIP.cols
    for roi in result.rois:
        truth = img.positions[roi.name]
        if target == "peak":
            truth = truth + img.peak_offset
        got = roi.outputs[POSITION_OUTPUT[method]]
        assert got["Mean"] == pytest.approx(float(np.mean(truth)), abs=0.5), roi.name
        assert got["Max"] - got["Min"] > 1.0  # the drift down the rows is seen


def _compare(expected: list[dict[str, Any]], got: list[dict[str, Any]], rel: float) -> None:
    assert got[0] == pytest.approx(expected[0], rel=1e-12)
    assert len(got) == len(expected)
    for e, g in zip(expected[1:], got[1:], strict=True):
        assert e.keys() == g.keys()
        for key, value in e.items():
            if not isinstance(value, dict):
                assert g[key] == value
                continue
            for stat, x in value.items():
                y = g[key][stat]
                assert (x is None) == (y is None), (e["ROI-label"], key, stat)
                if x is not None:
                    assert y == pytest.approx(x, rel=rel, abs=rel), (e["ROI-label"], key, stat)


@pytest.mark.parametrize("n_sub", [None, 5])
@pytest.mark.parametrize(
    ("line", "method", "rel"),
    [
        ("gaussian", "max_intensity", 1e-12),
        ("gaussian", "centre", 1e-12),
        ("gaussian", "gaussian", 1e-5),
        ("fano", "fano", 1e-4),
    ],
)
def test_results_equal_a_per_row_implementation(
    images: dict[tuple[str, float], SyntheticGratingImage],
    line: str,
    method: str,
    rel: float,
    n_sub: int | None,
) -> None:
    img = images[line, 1.5]
    expected = analyse_per_row(img.image, img.manifest.to_json(), method, n_sub)
    got = analyse_image(img.image, img.manifest, method, n_sub).to_record()["image_analysis"]
    _compare(expected, got, rel)


def test_statistics_definitions() -> None:
    v = np.array(
        [
            [1.0, np.nan, 2.0, 4.0, 3.0],
            [5.0, np.nan, np.nan, np.nan, np.nan],
            [2.0, 2.0, np.nan, np.nan, np.nan],
            [np.nan] * 5,
        ]
    )
    s = statistics(v)
    assert s["Mean"][0] == 2.5 and s["Median"][0] == 2.5 and s["LQ"][0] == 1.75
    assert s["STD"][0] == pytest.approx(np.std([1, 2, 4, 3]))
    # Smoothness = std(diff(values)) / (max - min), skipped rows left out
    assert s["Smoothness"][0] == pytest.approx(np.std([1, 2, -1]) / 3)
    assert np.isnan(s["Smoothness"][1]) and s["Mean"][1] == 5.0
    assert s["Smoothness"][2] == 0.0
    assert all(np.isnan(s[k][3]) for k in s)


def test_flat_rows_are_skipped() -> None:
    img = _image("gaussian", 0.0)
    flat = img.image.copy()
    roi = img.manifest.rois[0]
    flat[roi.row : roi.row + roi.height, roi.col : roi.col + roi.width] = 7000
    result = analyse_image(flat, img.manifest, "gaussian")
    assert all(v is None for v in result.rois[0].outputs["mu"].values())
    assert result.rois[1].outputs["mu"]["Mean"] is not None


def test_plugin_reads_16_bit_png_and_manifest(
    tmp_path: Path, images: dict[tuple[str, float], SyntheticGratingImage]
) -> None:
    img = images["gaussian", 1.5]
    png = tmp_path / "image_20250101_120000_000000_cam0.png"
    Image.fromarray(img.image).save(png)
    assert read_image(png).dtype == np.uint16
    np.testing.assert_array_equal(read_image(png), img.image)
    write_roi_manifest(img.manifest, tmp_path / "ROI_manifest.json")
    assert load_roi_manifest(tmp_path / "ROI_manifest.json") == img.manifest
    plugin = create_plugin(
        "grating",
        {
            "roi_manifest": tmp_path / "ROI_manifest.json",
            "method": "centre",
            "number_of_subROIs": 4,
        },
    )
    record = plugin.analyse(png).to_record()
    json.dumps(record)  # JSON-ready
    assert set(record["image_analysis"][0]) == {"brightness", "contrast"}
    first = record["image_analysis"][1]
    assert first["ROI-label"] == img.manifest.rois[0].name
    assert first["Analysis-method"] == "centre"
    assert set(first["centre"]) == {"Mean", "STD", "LQ", "Median", "UQ", "Max", "Min", "Smoothness"}


def test_bad_images_are_refused_with_a_reason(
    tmp_path: Path, images: dict[tuple[str, float], SyntheticGratingImage]
) -> None:
    img = images["gaussian", 0.0]
    png = tmp_path / "good.png"
    Image.fromarray(img.image).save(png)
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(png.read_bytes()[: png.stat().st_size // 2])
    with pytest.raises(ImageError, match="truncated"):
        read_image(truncated)
    garbage = tmp_path / "garbage.png"
    garbage.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4)
    with pytest.raises(ImageError, match="corrupt"):
        read_image(garbage)
    with pytest.raises(ImageError, match="does not exist"):
        read_image(tmp_path / "missing.png")
    rgb = tmp_path / "rgb.png"
    Image.new("RGB", (20, 20)).save(rgb)
    with pytest.raises(ImageError, match="grayscale"):
        read_image(rgb)
    with pytest.raises(ImageError, match="wrong size for the ROI manifest"):
        analyse_image(img.image[:300, :300], img.manifest, "gaussian")
    with pytest.raises(AnalysisError, match="unknown grating method"):
        analyse_image(img.image, img.manifest, "wavelet")


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "must be a JSON object"),
        ('{"image_angle": 1.0}', "holds no ROI"),
        ('{"ROI_A_1": {"label": "A", "flip": false, "coords": [0, 0]}}', "lacks size"),
        ('{"ROI_A_1": {"label": "A", "flip": "no", "coords": [0, 0], "size": [5, 9]}}', "flip"),
        (
            '{"ROI_A_1": {"label": "A", "flip": false, "coords": [0.5, 0], "size": [5, 9]}}',
            "coords",
        ),
        ('{"ROI_A_1": {"label": "A", "flip": false, "coords": [0, 0], "size": [0, 9]}}', "size"),
        (
            '{"ROI_A_1": {"label": "A", "flip": false, "coords": [0, 0], "size": [5, 9]}, '
            '"image_angle": "x"}',
            "image_angle",
        ),
    ],
)
def test_malformed_roi_manifest_is_refused(tmp_path: Path, content: str, reason: str) -> None:
    path = tmp_path / "ROI_manifest.json"
    path.write_text(content)
    with pytest.raises(RoiManifestError, match=reason):
        load_roi_manifest(path)
    with pytest.raises(RoiManifestError):
        create_plugin("grating", {"roi_manifest": path})


@pytest.mark.parametrize("angle", [0.0, 0.8, -3.3, 17.0])
def test_rotating_only_the_rois_gives_the_pixels_of_the_rotated_whole_image(angle: float) -> None:
    rng = np.random.default_rng(5)
    image = rng.integers(1000, 60_000, (300, 260)).astype(np.uint16)
    boxes = np.array(
        [
            [100, 80, 30, 120],  # inside
            [40, 10, 25, 100],
            [0, 0, 30, 120],  # on the border: samples outside the image
            [280, 200, 20, 60],
            [0, 240, 300, 20],  # a strip along the right edge
        ]
    )
    whole = rotate_image(normalise_uint8(image), angle)
    blocks = rotated_blocks(image, angle, boxes, normaliser(image))
    for (r, c, h, w), block in zip(boxes, blocks, strict=True):
        assert block.dtype == np.uint8
        np.testing.assert_array_equal(block, whole[r : r + h, c : c + w])


def test_image_summary_follows_numpy_definitions() -> None:
    image = np.random.default_rng(2).integers(0, 65_536, (123, 77)).astype(np.uint16)
    s = summarise(image)
    assert s.brightness == float(np.mean(image))
    assert s.contrast == float(np.percentile(image, 95) - np.percentile(image, 5))
    assert (s.minimum, s.maximum) == (float(image.min()), float(image.max()))
    f = summarise(image.astype(np.float64) / 7.0)
    assert f.contrast == pytest.approx(s.contrast / 7.0, rel=1e-12)


def test_fano_method_on_symmetric_lines_converges_and_agrees_with_the_per_row_fit(
    images: dict[tuple[str, float], SyntheticGratingImage],
) -> None:
    """A Gaussian line is the q -> infinity limit of the Fano shape: the fit must still settle
    (no NaN rows) on the line's position, and where the per-row curve_fit settles too, both
    give the same resonance, width, peak height and residual (|q| itself is decided by the
    noise: large, with either sign)."""
    img = images["gaussian", 1.5]
    result = analyse_image(img.image, img.manifest, "fano")
    for roi in result.rois:
        assert roi.outputs["resonance"]["Mean"] == pytest.approx(
            float(np.mean(img.positions[roi.name])), abs=0.5
        )
    roi = img.manifest.rois[0]
    rows = cut_rois(img.image, [roi], -img.manifest.image_angle, normaliser(img.image))[0]
    rows = rows.astype(np.float64)
    ours = linefits.fit_fano(rows)
    assert np.all(np.isfinite(ours))
    assert np.all(np.abs(ours[:, 1]) > 10)  # nearly symmetric
    compared = 0
    for row, got in zip(rows, ours, strict=True):
        ref = row_result("fano", row)
        if ref is None:  # curve_fit gave up (maxfev) on this row
            continue
        compared += 1
        amp, q, res, gamma, _offset, err = ref
        assert got[2] == pytest.approx(res, abs=1e-3)
        assert got[3] == pytest.approx(gamma, rel=1e-3)
        assert got[5] == pytest.approx(err, rel=1e-6)
        assert got[0] * (got[1] ** 2 - 1) == pytest.approx(amp * (q**2 - 1), rel=1e-3)
    assert compared >= 3
