// GPT2Checkpoint owns reading a Hugging Face GPT-2 checkpoint (GPT2Model or GPT2LMHeadModel,
// with or without the "transformer." prefix) into GPT2Model's weights: HF stores every matrix
// as a Conv1D, [in, out], and Q, K, V fused in c_attn; the graph takes [out, in] matrices and
// three projections. The LM head is tied to wte (a separate lm_head.weight is ignored only if
// it equals wte; otherwise the checkpoint is refused).
import Foundation
import VeilRing

extension GPT2Model {
  /// The Float64 weights of the checkpoint in `modelDirectory` (config.json + model.safetensors).
  public static func checkpoint(modelDirectory directory: String) throws(ModelError) -> (
    GPT2Model, Float64Weights
  ) {
    let config = try ModelConfig(modelDirectory: directory)
    guard config.architecture == .gpt2 else {
      throw .unsupported(path: directory + "/config.json", reason: "not a GPT-2 model")
    }
    let model = GPT2Model(config: config)
    let file = try SafeTensorsFile(path: directory + "/model.safetensors")
    return (model, try model.weights(from: file))
  }

  func weights(from file: SafeTensorsFile) throws(ModelError) -> Float64Weights {
    let prefix = file.entries["transformer.wte.weight"] != nil ? "transformer." : ""
    let d = config.hiddenSize
    let ff = config.intermediateSize
    var tensors: [WeightID: Tensor<Double>] = [:]
    func read(_ name: String, _ shape: [Int]) throws(ModelError) -> Tensor<Double> {
      try file.floats(prefix + name, expectedShape: shape)
    }
    /// A Conv1D [in, out] matrix as [out, in].
    func conv(_ name: String, _ shape: [Int]) throws(ModelError) -> Tensor<Double> {
      do { return try read(name, shape).transposed() } catch let error as ModelError {
        throw error
      } catch { throw .malformed(path: file.path, reason: "\(name): \(error)") }
    }
    func rows(_ t: Tensor<Double>, _ range: Range<Int>, width: Int) throws(ModelError) -> Tensor<
      Double
    > {
      do {
        return try Tensor(
          shape: [range.count, width],
          scalars: Array(t.scalars[(range.lowerBound * width)..<(range.upperBound * width)]))
      } catch { throw .malformed(path: file.path, reason: "c_attn: \(error)") }
    }
    func vector(_ values: ArraySlice<Double>) throws(ModelError) -> Tensor<Double> {
      do { return try Tensor(shape: [values.count], scalars: Array(values)) } catch {
        throw .malformed(path: file.path, reason: "c_attn.bias: \(error)")
      }
    }
    tensors["wte.weight"] = try read("wte.weight", [config.vocabularySize, d])
    tensors["wpe.weight"] = try read("wpe.weight", [config.maxPositions, d])
    for l in 0..<config.layers {
      let h = "h.\(l)."
      // c_attn [d, 3d] → [3d, d]: rows 0..<d are Q, then K, then V.
      let fused = try conv(h + "attn.c_attn.weight", [d, 3 * d])
      let fusedBias = try read(h + "attn.c_attn.bias", [3 * d]).scalars
      for (i, name) in ["attn.query", "attn.key", "attn.value"].enumerated() {
        tensors[layerWeight(l, name + ".weight")] = try rows(
          fused, (i * d)..<((i + 1) * d), width: d)
        tensors[layerWeight(l, name + ".bias")] = try vector(fusedBias[(i * d)..<((i + 1) * d)])
      }
      for (name, shape) in [
        ("attn.c_proj", [d, d]), ("mlp.c_fc", [d, ff]), ("mlp.c_proj", [ff, d]),
      ] {
        tensors[layerWeight(l, name + ".weight")] = try conv(h + name + ".weight", shape)
        tensors[layerWeight(l, name + ".bias")] = try read(h + name + ".bias", [shape[1]])
      }
      for norm in ["ln_1", "ln_2"] {
        tensors[layerWeight(l, norm + ".weight")] = try read(h + norm + ".weight", [d])
        tensors[layerWeight(l, norm + ".bias")] = try read(h + norm + ".bias", [d])
      }
    }
    tensors["ln_f.weight"] = try read("ln_f.weight", [d])
    tensors["ln_f.bias"] = try read("ln_f.bias", [d])
    if file.entries["lm_head.weight"] != nil {
      let head = try file.floats("lm_head.weight", expectedShape: [config.vocabularySize, d])
      guard head.scalars == tensors["wte.weight"]?.scalars else {
        throw .unsupported(path: file.path, reason: "an lm_head.weight not tied to wte")
      }
    }
    return Float64Weights(tensors: tensors)
  }
}
