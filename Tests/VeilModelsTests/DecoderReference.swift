// The float64 references of transformers' decoders (Data/*-reference.json, made by
// scripts/reference/make-{gpt2,llama}-reference.py) and the check every decoder test runs
// against one: per case the last hidden state and sampled logits within 1e-6, the argmax, and
// every position's hidden state through two sums.
import Foundation
import Testing

@testable import VeilModels

struct DecoderReference: Decodable {
  struct Case: Decodable {
    let ids: [Int]
    let hidden_last: [Double]
    let logits_last_sample: [[Double]]
    let argmax_last: Int
    let hidden_all_abs_sum: Double
    let hidden_all_weighted_sum: Double
  }
  struct Greedy: Decodable {
    let prompt_ids: [Int]
    let ids: [Int]
  }
  let cases: [Case]
  let greedy_16: Greedy

  static func load(_ name: String) throws -> DecoderReference {
    let url = try #require(
      Bundle.module.url(forResource: name, withExtension: "json", subdirectory: "Data"))
    return try JSONDecoder().decode(DecoderReference.self, from: Data(contentsOf: url))
  }

  /// `model` on the Float64 engine against every case.
  func check(_ model: any DecoderGraph, _ engine: Float64Engine) async throws {
    #expect(cases.count >= 3)
    for c in cases {
      let all = try await model.decode(TokenInput(ids: c.ids), engine: engine)
      let hidden = try await model.output(TokenInput(ids: c.ids), validTokens: nil, engine: engine)
      let logits = try await model.logits(hidden, engine: engine).scalars
      let hiddenError = zip(hidden.scalars, c.hidden_last).map { abs($0 - $1) }.max() ?? 1
      #expect(
        hidden.scalars.count == c.hidden_last.count && hiddenError <= 1e-6,
        "hidden error \(hiddenError)")
      let logitError = c.logits_last_sample.map { abs(logits[Int($0[0])] - $0[1]) }.max() ?? 1
      #expect(logitError <= 1e-6, "logit error \(logitError)")
      #expect(logits.indices.max { logits[$0] < logits[$1] } == c.argmax_last)
      let d = model.config.hiddenSize
      let absSum = all.scalars.reduce(0) { $0 + abs($1) }
      var weighted = 0.0
      var magnitude = 0.0
      for (i, v) in all.scalars.enumerated() {
        let term = v * Double((i / d + 1) * (i % d + 1))
        weighted += term
        magnitude += abs(term)
      }
      #expect(abs(absSum - c.hidden_all_abs_sum) <= 1e-6 * Double(all.scalars.count), "\(absSum)")
      // 1e-4, or float64's rounding of a sum this large.
      #expect(
        abs(weighted - c.hidden_all_weighted_sum) <= max(1e-4, 1e-12 * magnitude), "\(weighted)")
    }
  }
}
