// The options that choose a run's recipe, shared by `veil embed`, `veil bench model` and
// `veil bench ops`: one published recipe, per-family overrides for experiments, and the ring.
import ArgumentParser
import VeilMPC
import VeilModels

extension Approximation: ExpressibleByArgument {}

struct RecipeOptions: ParsableArguments {
  @Option(help: "The approximation recipe: sigma, puma or secformer.")
  var recipe: Approximation = .sigma
  @Option(help: "GeLU's approximation, overriding --recipe (sigma, puma, secformer).")
  var gelu: Approximation?
  @Option(help: "Softmax's approximation, overriding --recipe.") var softmax: Approximation?
  @Option(help: "LayerNorm's rsqrt approximation, overriding --recipe.") var norm: Approximation?
  @Option(help: "Ring width n (default: the recipe's, 50 for SIGMA, 64 for PUMA and SecFormer).")
  var ringBits: Int?
  @Option(help: "Fractional bits f (default: the recipe's, 12 / 18 / 16).")
  var fractionalBits: Int?
  @Option(
    help: ArgumentHelp(
      "SIGMA GeLU/SiLU: compare in this many bits at the table's scale (default 18: |x| < 1024).",
      discussion:
        "Inputs beyond 2^(bits − 8) wrap; the fixed-point engine counts them (--ranges)."))
  var geluRingBits: Int?
  @Option(
    help: ArgumentHelp(
      "SIGMA softmax: max tree in this many bits (default f + 14: |score| < 2^(bits − f − 2)).")
  )
  var softmaxRingBits: Int?
  @Option(help: "PUMA: squarings k of exp ≈ (1 + x/2^k)^(2^k) (default 8; PUMA's runs used 5).")
  var expIterations: Int?
  @Option(help: "SecFormer: Goldschmidt iterations of rsqrt (default 16).")
  var rsqrtIterations: Int?

  /// The parameters these options name, checked; `defaultRingBits` replaces the recipe's ring
  /// when --ring-bits is not given.
  func parameters(defaultRingBits: Int? = nil) throws -> RecipeParameters {
    var p = RecipeParameters.preset(
      recipe, ringBits: ringBits ?? defaultRingBits, fractionalBits: fractionalBits)
    if let gelu { p.gelu = gelu }
    if let softmax { p.softmax = softmax }
    if let norm { p.normalization = norm }
    if let geluRingBits { p.geluRingBits = geluRingBits }
    if let softmaxRingBits { p.softmaxRingBits = softmaxRingBits }
    if let expIterations { p.expIterations = expIterations }
    if let rsqrtIterations { p.rsqrtIterations = rsqrtIterations }
    do { try p.validate() } catch { throw CommandError("\(error)") }
    return p
  }

  /// The parameters for a model: LLaMA-family residual streams carry a few huge activations
  /// (SmolLM2-135M: up to ≈ 24 950), so RMSNorm's sum of squares at scale 2f reaches 2^55.3 at
  /// f = 12 and SIGMA's rsqrt needs it below 2^(n−2). At n = 50 it wraps (37 overflows in the
  /// chat prompt's first 7 steps, the reply diverges at its sixth token); n ≥ 58 holds it, and
  /// SIGMA's default for LLaMA is n = 60, two bits of headroom (BENCHMARKS.md). PUMA's and
  /// SecFormer's presets are 64 bits already. --ring-bits overrides.
  func parameters(for config: ModelConfig) throws -> RecipeParameters {
    try parameters(defaultRingBits: config.architecture == .llama && recipe == .sigma ? 60 : nil)
  }
}
