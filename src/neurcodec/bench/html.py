"""`bench --html`: one self-contained report.html — RD plots, the BD table and a per-image viewer
that puts the original, neurcodec and each anchor *at the closest bytes* side by side.

Self-contained means openable from disk with no network: plots and pictures are embedded as
data URIs (pictures as lossless WebP, so codec artefacts show as they are), the script inline.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from PIL import Image

from neurcodec.bench.codecs import Codec
from neurcodec.bench.runner import BenchResults, Row, load_image

DEFAULT_IMAGES = 8  # pictures in the viewer: each costs ~1 MB of page per panel


def _data_uri(image: Image.Image) -> str:
    buf = io.BytesIO()
    image.convert("RGB").save(buf, "WEBP", lossless=True, quality=100, method=4)
    return "data:image/webp;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _png_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def reference_quality(results: BenchResults, test: str) -> int:
    """The test codec's setting the viewer shows: the middle of its sweep by mean bpp."""
    curve = results.curve(test)
    order = sorted(range(len(curve.qualities)), key=lambda i: curve.results["bpp"][i])
    return curve.qualities[order[len(order) // 2]]


def closest_rows(results: BenchResults, image: str, reference: Row, anchors: Sequence[str]) -> list[Row]:
    """For each anchor, its setting on `image` whose file size is closest to `reference`'s."""
    chosen = []
    for anchor in anchors:
        rows = [r for r in results.rows if r.codec == anchor and r.image == image]
        if rows:
            chosen.append(min(rows, key=lambda r: (abs(r.bytes - reference.bytes), r.bytes)))
    return chosen


def _panel(label: str, row: Row | None, picture: Image.Image, codecs: dict[str, Codec]) -> dict[str, Any]:
    if row is None:
        return {"label": label, "setting": "", "bytes": None, "bpp": None, "src": _data_uri(picture)}
    codec = codecs[row.codec]
    return {
        "label": row.codec,
        "setting": f"{codec.quality_label} {row.quality}",
        "bytes": row.bytes,
        "bpp": round(row.bpp, 4),
        "metrics": {k: (None if isinstance(v, float) and math.isnan(v) else round(v, 4)) for k, v in row.metrics.items()},
        "src": _data_uri(picture),
    }


def viewer_data(
    results: BenchResults, sweeps: Sequence[tuple[Codec, Sequence[int]]], paths: Sequence[Path],
    test: str, anchors: Sequence[str], limit: int = DEFAULT_IMAGES,
) -> list[dict[str, Any]]:
    """Per image: the original, the test codec at its reference setting, each anchor at the
    closest bytes — re-encoded and decoded here (the sweep keeps numbers, not pictures)."""
    codecs = {codec.name: codec for codec, _ in sweeps}
    q_ref = reference_quality(results, test)
    out = []
    for path in list(paths)[:limit]:
        original = load_image(path)
        ref = next(r for r in results.rows if r.codec == test and r.quality == q_ref and r.image == path.name)
        panels = [_panel("original", None, original, codecs)]
        for row in [ref, *closest_rows(results, path.name, ref, anchors)]:
            panels.append(_panel(row.codec, row, codecs[row.codec].run(original, row.quality).decoded, codecs))
        out.append({"image": path.name, "width": original.width, "height": original.height, "panels": panels})
    return out


def bd_rows(doc: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for entry in doc.get("bd", []):
        rate, quality = entry.get("bd_rate_percent") or {}, entry.get("bd_quality") or {}
        rows.append({
            "test": entry["test"], "anchor": entry["anchor"], "metric": entry["metric"],
            "rate": rate.get("value"), "quality": quality.get("value"), "note": rate.get("note") or quality.get("note") or "",
        })
    return rows


def write_html(
    out_dir: Path, doc: dict[str, Any], plots: Sequence[Path], viewer: list[dict[str, Any]], title: str = "neurcodec bench"
) -> Path:
    """Write `out_dir/report.html` (atomic) and return its path."""
    data = {"title": title, "images": viewer, "bd": bd_rows(doc), "notes": doc.get("notes", [])}
    plots_html = "\n".join(
        f'<figure><img alt="{html.escape(p.stem)}" src="{_png_uri(p)}"><figcaption>{html.escape(p.stem)}</figcaption></figure>'
        for p in plots
    )
    # A plot that could not be drawn says why in its place: the section is never silently empty.
    plots_html += "".join(
        f'\n<p class="skipped">{html.escape(s["part"])} skipped: {html.escape(s["reason"])}</p>'
        for s in doc.get("skipped", []) if s["part"].startswith("plot ")
    )
    page = (
        _TEMPLATE.replace("__TITLE__", html.escape(title))
        .replace("__PLOTS__", plots_html)
        .replace("__DATA__", json.dumps(data, allow_nan=False).replace("</", "<\\/"))
    )
    target = out_dir / "report.html"
    tmp = target.with_suffix(".tmp")
    tmp.write_text(page, encoding="utf-8")
    tmp.replace(target)
    return target


_TEMPLATE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>__TITLE__</title>
<style>
  body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; color: #222; background: #fafafa; }
  h1 { font-size: 1.4em; } h2 { font-size: 1.15em; margin-top: 1.6em; }
  .plots { display: flex; flex-wrap: wrap; gap: 1em; }
  .plots figure { margin: 0; background: #fff; padding: .5em; border: 1px solid #ddd; }
  .plots img { width: 420px; display: block; }
  .skipped { color: #a33; }
  table { border-collapse: collapse; background: #fff; }
  th, td { border: 1px solid #ddd; padding: .25em .6em; text-align: right; }
  th:first-child, td:first-child, td:nth-child(2), td:nth-child(3) { text-align: left; }
  .controls { display: flex; flex-wrap: wrap; gap: 1em; align-items: center; margin: .8em 0; }
  .stage { position: relative; overflow: auto; border: 1px solid #bbb; background: #333; max-height: 80vh; cursor: zoom-in; }
  .stage.one-to-one { cursor: zoom-out; }
  .stage .layers { position: relative; width: 100%; }
  .stage.one-to-one .layers { width: auto; display: inline-block; }
  .stage img { display: block; width: 100%; image-rendering: pixelated; }
  .stage.one-to-one img { width: auto; max-width: none; }
  .stage img.top { position: absolute; left: 0; top: 0; height: 100%; }
  .tag { position: absolute; top: .4em; background: rgba(0,0,0,.7); color: #fff; padding: .2em .5em; font-size: 12px; pointer-events: none; z-index: 2; }
  .tag.left { left: .4em; } .tag.right { right: .4em; }
  .strip { display: flex; flex-wrap: wrap; gap: .6em; margin-top: 1em; }
  .strip figure { margin: 0; width: 220px; cursor: pointer; background: #fff; border: 2px solid #ddd; }
  .strip figure.chosen { border-color: #1a73e8; }
  .strip img { width: 100%; display: block; }
  .strip figcaption { padding: .2em .4em; font-size: 12px; }
  #split { width: 320px; }
</style>
</head>
<body>
<h1>__TITLE__</h1>
<h2>Rate–distortion</h2>
<div class="plots">
__PLOTS__
</div>
<h2>BD-rate and BD-quality (negative rate = fewer bytes than the anchor)</h2>
<table id="bd"><thead><tr><th>test</th><th>anchor</th><th>metric</th><th>BD-rate %</th><th>BD-quality</th><th>note</th></tr></thead><tbody></tbody></table>
<ul id="notes"></ul>
<h2>Pictures at the closest bytes</h2>
<div class="controls">
  <label>image <select id="image"></select></label>
  <label>left <select id="left"></select></label>
  <label>right <select id="right"></select></label>
  <label>split <input id="split" type="range" min="0" max="100" value="50"></label>
  <label><input id="zoom" type="checkbox"> 1:1 (or click the picture)</label>
</div>
<div class="stage" id="stage">
  <div class="layers" id="layers">
    <img id="under" alt="right panel">
    <img id="over" class="top" alt="left panel">
  </div>
  <span class="tag left" id="tag-left"></span><span class="tag right" id="tag-right"></span>
</div>
<div class="strip" id="strip"></div>
<script>
"use strict";
const DATA = __DATA__;
const $ = (id) => document.getElementById(id);
const fmt = (v, d) => (v === null || v === undefined) ? "–" : Number(v).toFixed(d);
function describe(p) {
  if (p.bytes === null) return p.label;
  return `${p.label} · ${p.setting} · ${p.bytes} B · ${fmt(p.bpp, 4)} bpp`;
}
function fillBd() {
  const body = $("bd").tBodies[0];
  for (const r of DATA.bd) {
    const tr = body.insertRow();
    for (const v of [r.test, r.anchor, r.metric, fmt(r.rate, 1), fmt(r.quality, 3), r.note]) tr.insertCell().textContent = v;
  }
  for (const n of DATA.notes) { const li = document.createElement("li"); li.textContent = n; $("notes").appendChild(li); }
}
function current() { return DATA.images[$("image").selectedIndex]; }
function fillPanels() {
  const item = current();
  for (const id of ["left", "right"]) {
    const sel = $(id), keep = sel.value;
    sel.innerHTML = "";
    item.panels.forEach((p, i) => sel.add(new Option(describe(p), String(i))));
    sel.value = keep && keep < item.panels.length ? keep : (id === "left" ? "0" : "1");
  }
  const strip = $("strip");
  strip.innerHTML = "";
  item.panels.forEach((p, i) => {
    const fig = document.createElement("figure");
    const img = document.createElement("img"); img.src = p.src; img.alt = p.label;
    const cap = document.createElement("figcaption"); cap.textContent = describe(p);
    fig.append(img, cap);
    fig.addEventListener("click", () => { $("right").value = String(i); show(); });
    strip.appendChild(fig);
  });
  show();
}
function show() {
  const item = current(), left = item.panels[$("left").value], right = item.panels[$("right").value];
  $("over").src = left.src; $("under").src = right.src;
  $("tag-left").textContent = describe(left); $("tag-right").textContent = describe(right);
  [...$("strip").children].forEach((f, i) => f.classList.toggle("chosen", String(i) === $("right").value));
  split();
}
function split() {
  $("over").style.clipPath = `inset(0 ${100 - Number($("split").value)}% 0 0)`;
}
function zoomTo(on, event) {
  const stage = $("stage"), before = stage.getBoundingClientRect();
  $("zoom").checked = on;
  stage.classList.toggle("one-to-one", on);
  if (on && event) {  // keep the clicked point under the pointer
    const item = current();
    const fx = (event.clientX - before.left) / before.width, fy = (event.clientY - before.top) / before.height;
    stage.scrollLeft = fx * item.width - (event.clientX - before.left);
    stage.scrollTop = fy * item.height - (event.clientY - before.top);
  }
}
DATA.images.forEach((it) => $("image").add(new Option(`${it.image} (${it.width}×${it.height})`)));
$("image").addEventListener("change", fillPanels);
$("left").addEventListener("change", show);
$("right").addEventListener("change", show);
$("split").addEventListener("input", split);
$("zoom").addEventListener("change", () => zoomTo($("zoom").checked));
$("stage").addEventListener("click", (e) => zoomTo(!$("stage").classList.contains("one-to-one"), e));
fillBd();
if (DATA.images.length) fillPanels();
</script>
</body>
</html>
"""
