"""A Graph as an ONNX model, and back: the exchange format read by `snn-deploy inspect` and tools.

One call of the model is ONE time step of the network: the graph input `image` is the image
(N, C, H, W) for this step (batch N symbolic), the graph output is the output population's spikes
for this step. The neuron nodes hold their state (synaptic current, membrane voltage) from call to
call, starting at zero; run T = metadata `time_steps` calls with the same image for one inference.

Layout. Every Graph node becomes one principal ONNX node named like it, whose output tensor has
the same name; a few plumbing nodes (`Cast`, `Reshape`) named `<node>:<role>` adapt types and
shapes. Standard operators (opset 17, IR version 8, for tools and runtimes of the last years):
- `Dense` -> `Gemm(x, <node>.weight, transB=1)`, the weight initialiser in the Graph's (out, in)
  layout; a `Reshape(x, [0, -1])` first flattens an input of more than one dimension. Synaptic
  delays are the initialiser `<node>.delay` (int32, (out, in), in steps: what input i sends at
  step t reaches output o at t + delay[o, i]; version 6, which a plain runtime ignores).
- `Conv2d` -> `Conv(x, <node>.weight)` with `kernel_shape`, `strides` [sh, sw], `pads`
  [ph, pw, ph, pw].
- `Flatten` -> `Flatten(axis=1)`.
Custom operators, domain `snn_deploy` version 6 (real values are FLOAT attributes, rounded to
float32 for tools, each with a `<key>_f64` attribute, a double scalar TENSOR holding the exact
value that reading back uses; a file without `<key>_f64` is read from `<key>`):
- `snn_deploy.Input(image) -> spikes`, INT `levels`: the direct encoding; `spikes = image` in a
  float model, `round(image * levels)` (int32, a graded spike) in a fixed-point model. With INT
  `constant_plane` 1 (version 4), the image's last channel is not data but 1 at every step: it
  carries an input normalisation's offset (`toolchain.ir.nodes.Input`).
- `snn_deploy.SumPool2d(x) -> y`, INT `size`, real `weight`: `weight` times the sum of every
  size x size window, stride `size`.
- `snn_deploy.CubaLIF(x) -> spikes` (0/1, same shape as x), stateful, one neuron per element:
  real `tau_m`, `tau_s`, `threshold` (the float dynamics of `toolchain.ir.graph`); in a fixed-point
  model also INT `du`, `dv`, `vth` and real `scale` (Loihi 2's CUBA LIF, see `toolchain.ir.graph`),
  and, when a Dense feeds it, INT `weight_exp`: that Dense's weight exponent, kept here as
  standard Gemm has no room for it (the integer sum is shifted, << e or arithmetic >> -e, as it
  enters the neurons; absent means 0). A population that resets by subtraction has real
  `reset_subtract` (and, fixed, INT `reset_sub`); absent, a spike resets the voltage to 0. A
  population with a bias has the initialiser `<node>.bias` (per channel or neuron) and, fixed,
  `<node>.bias_mant` (int32) with INT `bias_exp` (version 3; an older reader would miss
  these, hence the version). A population that emits spike counts (several spikes per step,
  Sinabs and Rockpool) has INT `max_spikes` > 1 (version 5); its output is the count. A bias
  into the synaptic current is the initialiser `<node>.synaptic_bias` and, fixed,
  `<node>.synaptic_bias_int` (int32); INT `refractory` 1 holds u at 0 the step after a spike;
  INT `readout` 1 marks the last population as a leaky integrator whose output is its membrane
  (version 5). A time constant, threshold or reset amount (and its integer) that differs
  between the neurons is the initialiser `<node>.<key>` (per channel or neuron) instead of the
  attribute (version 6).
The custom nodes have no schema that ONNX knows, so the model declares the type and shape of every
intermediate tensor in `value_info` (checked against the standard nodes by strict inference).

Types. A float model is float end to end, in the one dtype of its weights (float32 from training;
mixed dtypes are refused). A fixed-point model (`Graph.is_fixed`: every node quantised, no
SumPool2d) is int32 between nodes; its synapses consume the int32 initialiser `<node>.weight_int`:
`Gemm` runs on int32; `Conv`, which ONNX defines for floats only, gets `Cast` to float32 inputs
and a `Cast` of its sum back to int32 (exact while |sum| < 2**24; Loihi wraps convolution sums to
24 bits). The image stays float32.
Each synapse also keeps its float weight as initialiser `<node>.weight` (unused by the nodes of a
fixed-point model) and any integer weight as `<node>.weight_int`, so reading back is lossless
(a partly quantised Graph is a float model carrying its integers the same way).

Reading (`load_onnx`) rebuilds one Graph node per principal node, in order, taking weights from
the initialisers named after the node, and the edges from the node inputs (skipping the
plumbing), then runs the full ONNX check.

Metadata (`metadata_props`): `time_steps`, `encoding`, `producer`, `version`, `graph_name`,
`fixed_point` ("true"/"false").
"""

from __future__ import annotations

from toolchain.errors import UserError

DOMAIN = "snn_deploy"
DOMAIN_VERSION = 6
READABLE_VERSIONS = (1, 2, 3, 4, 5, 6)
OPSET = 17
IR_VERSION = 8
IMAGE = "image"
PREVIOUS = ":previous"  # suffix of the graph input carrying a recurrent source's last output
PLUMBING = ("Cast", "Reshape")
FIXED_KEYS = ("du", "dv", "vth", "scale")  # a fixed-point population states all four


class OnnxFormatError(UserError, ValueError):
    """A file is not a readable snn-deploy ONNX model; the message names the file."""
