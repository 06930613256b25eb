"""report.html: one self-contained page a person opens (plots embedded as data URIs, no script,
no network access), of sections each command contributes: the quantisation report, float
against fixed point per layer with its rasters, a deployment's check, the Loihi 2 plan and its
cost."""

from __future__ import annotations

import base64
import html
import json
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from quantize.budget import Budget
from toolchain.atomic import write_text
from toolchain.report.chip_plan import ChipPlan, plot_plan
from toolchain.report.compare import Comparison

STYLE = (
    "body{font-family:sans-serif;margin:2em;max-width:70em;color:#222}"
    "table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #bbb;padding:.2em .6em;"
    "text-align:right}th{background:#eee}td:first-child{text-align:left}"
    "img{max-width:100%;display:block;margin:.5em 0}.bad{color:#b00;font-weight:bold}"
)


@dataclass(frozen=True)
class Section:
    title: str
    body: str  # HTML


def text(value: object) -> str:
    return html.escape(str(value))


def table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    head = "".join(f"<th>{text(cell)}</th>" for cell in header)
    body = "".join("<tr>" + "".join(f"<td>{text(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def figure(png: Path, caption: str) -> str:
    """The PNG embedded in the page."""
    data = base64.b64encode(png.read_bytes()).decode("ascii")
    return f'<figure><img alt="{text(caption)}" src="data:image/png;base64,{data}">' + (
        f"<figcaption>{text(caption)}</figcaption></figure>"
    )


def write_report(path: Path, title: str, sections: Sequence[Section]) -> Path:
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{text(title)}</title><style>{STYLE}</style></head><body>",
        f"<h1>{text(title)}</h1>",
    ]
    for section in sections:
        parts.append(f"<section><h2>{text(section.title)}</h2>{section.body}</section>")
    parts.append("</body></html>")
    write_text(path, "\n".join(parts))
    return path


def write_report_with_plan(
    path: Path,
    title: str,
    sections: Sequence[Section],
    chip_plan: ChipPlan,
    quantization: dict | None = None,
    picture: Path | None = None,
) -> Path:
    """The page of a command: the quantisation report (where there is one), the command's own
    sections, then the Loihi 2 plan with its plot (`picture`, where the command wrote it
    already)."""
    with tempfile.TemporaryDirectory() as folder:
        if picture is None:
            picture = plot_plan(chip_plan, Path(folder) / "plan.png")
        page = [*sections, plan_section(chip_plan, picture)]
        if quantization is not None:
            page.insert(0, quantization_section(quantization))
        return write_report(path, title, page)


def percent(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.2f} %"


# ------------------------------------------------------------------------------------ sections


def plan_section(chip_plan: ChipPlan, picture: Path | None = None) -> Section:
    plan = chip_plan.to_json()
    rows = [
        (
            layer["name"],
            layer["axons_in"],
            layer["neurons_per_core"],
            layer["synapse_words_per_core"],
            layer["axon_map"],
            layer["cores"],
            "" if layer["tile"] is None else "Conv({}, {}, {})".format(*layer["tile"]),
            f"{layer.get('spikes_per_inference', 0):.1f}",
            f"{layer.get('synaptic_ops_per_inference', 0):.0f}",
        )
        for layer in plan["layers"]
    ]
    header = ("layer", "AxonIn", "Neurons", "Synapses", "AxonMap", "Cores", "tile")
    body = table((*header, "spikes/inference", "synaptic ops/inference"), rows)
    fits = "fits" if chip_plan.fits else '<span class="bad">does NOT fit</span>'
    body += f"<p>{plan['cores']} neuro cores on {plan['chips']} chip(s): {fits}.</p>"
    if chip_plan.violations:
        body += "<ul>" + "".join(f"<li>{text(v)}</li>" for v in chip_plan.violations) + "</ul>"
    if chip_plan.cost is not None:
        cost = chip_plan.cost
        body += table(
            ("per inference", "value"),
            [
                ("energy (J)", f"{cost.energy_per_inference_j:.4g}"),
                ("dynamic energy (J)", f"{cost.dynamic_energy_per_inference_j:.4g}"),
                ("time per step (s)", f"{cost.time_per_step_s:.4g}"),
                ("inferences per second", f"{cost.inferences_per_s:.4g}"),
                ("samples counted", plan["samples"]),
            ],
        )
        body += f"<p>Model: {text(cost.model)} (docs/loihi2-plan.md).</p>"
    body += table(("NeuroBench", "value"), [(k, f"{v:.4g}") for k, v in plan["neurobench"].items()])
    if picture is not None:
        body += figure(picture, "neuro cores and synaptic operations per layer")
    return Section("Loihi 2 plan", body)


def comparison_section(comparison: Comparison, pictures: Sequence[Path]) -> Section:
    rows = [
        (
            layer.name,
            layer.neurons,
            layer.float_spikes,
            layer.fixed_spikes,
            f"{layer.agreement:.4f}",
            layer.current_wraps,
            layer.voltage_saturations,
        )
        for layer in comparison.layers
    ]
    body = (
        f"<p>{comparison.samples} samples: float accuracy {percent(comparison.float_accuracy)}, "
        f"fixed point {percent(comparison.fixed_accuracy)}, {len(comparison.changed)} "
        "predictions changed.</p>"
    )
    header = ("layer", "neurons", "float spikes", "fixed spikes", "agreement", "wraps", "sat.")
    body += table(header, rows)
    divergences = comparison.divergences
    body += (
        f"<p>First divergence: {divergences.diverging} samples' spikes leave the float ones "
        "somewhere; where each first does (the earliest step, then layer):</p>"
    )
    body += table(
        ("layer", "samples diverging first there"),
        [
            (name, sum(counts))
            for name, counts in zip(divergences.layers, divergences.histogram, strict=True)
        ],
    )
    worst = [
        (d.sample, divergences.layers[d.layer], d.step, d.differing, *_state_cells(d.state))
        for d in divergences.worst()[:10]
    ]
    if worst:
        header = ("changed sample", "layer", "step", "neurons differing")
        header += ("float v", "threshold", "margin", "fixed v", "fixed threshold")
        body += table(header, worst)
    if comparison.budget is not None:
        body += budget_html(comparison.budget)
    body += "".join(figure(p, p.stem) for p in pictures)
    return Section("Float against fixed point, per layer", body)


def _state_cells(state: dict[str, float] | None) -> tuple[str, ...]:
    """The first differing neuron's state at a divergence, in float units."""
    keys = ("float_voltage", "threshold", "margin", "fixed_voltage", "fixed_threshold")
    return tuple("" if state is None else f"{state[k]:.4f}" for k in keys)


def budget_html(budget: Budget) -> str:
    """The error budget: per source, the disagreement it causes alone and what it accounts for."""
    shown = [i for i, c in enumerate(budget.compared) if c]
    body = (
        f"<p>Error budget over {budget.samples} samples: the spike disagreement per layer with "
        "only one source of error quantised (every other put back to exact), and the predictions "
        "it changes alone and with it put back (every other quantised).</p>"
    )
    rows = []
    for name in ["fixed", *budget.ranking(), "all exact"]:
        key = name if name in ("fixed", "all exact") else f"{name} alone"
        tally = budget.tallies[key]
        back = budget.tallies.get(f"{name} put back")
        cells = [f"{tally.disagreement()[i]:.4f}" for i in shown]
        rows.append((name, *cells, tally.changed, "" if back is None else back.changed))
    header = ("source", *(budget.layers[i] for i in shown), "changed alone", "put back")
    body += table(header, rows)
    advice = [
        (a["source"], ", ".join(a["layers"]), a["try"], a["command"]) for a in budget.advice()
    ]
    if advice:
        body += table(("source", "dominant in", "what to try", "command"), advice)
    return body


def quantization_report(path: Path) -> dict | None:
    """The report `quantize` wrote (X.report.json beside the graph X.onnx), if it is there."""
    try:
        report = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return report if isinstance(report, dict) else None


def quantization_section(report: dict) -> Section:
    rows = [
        (
            layer.get("population"),
            layer.get("synapse"),
            layer.get("weight_exp"),
            layer.get("vth"),
            layer.get("limited_by"),
        )
        for layer in report.get("quantization", {}).get("layers", [])
    ]
    body = table(
        ("accuracy", "value"),
        [
            ("float", percent(report.get("float_accuracy"))),
            ("after PTQ", percent(report.get("ptq_accuracy"))),
            ("fixed point", percent(report.get("fixed_accuracy"))),
            ("predictions alike", percent(report.get("prediction_agreement"))),
        ],
    )
    body += table(("population", "synapse", "weight_exp", "vth", "scale limited by"), rows)
    return Section("Quantisation", body)


def deployment_section(result: dict) -> Section:
    same = "yes, every one" if result["matches_reference"] else '<span class="bad">NO</span>'
    body = table(
        ("deployment", "value"),
        [
            (key, f"{result[key]:.3g}" if isinstance(result[key], float) else result[key])
            for key in ("target", "samples", "steps", "seconds", "prediction")
            if key in result
        ],
    )
    if "accuracy" in result:
        body += f"<p>Accuracy on the target: {percent(result['accuracy'])}.</p>"
    body += f"<p>Output spikes equal to the reference simulator's: {same}.</p>"
    return Section("Deployment", body)
