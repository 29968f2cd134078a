// The library's front door: embeddings on secret shares in two lines, either with every role
// in this process (`LocalDeployment`, for trying Veil out and for tests) or as the client of a
// real deployment (`VeilClient`, in VeilClient.swift). Everything an application needs is here
// and in `RecipeParameters`; the protocol layers stay behind it.
import Foundation
import VeilMPC
import VeilModels

/// A model set up once with every role in this process (owner, dealer, P0, P1, client over
/// in-memory channels): each `embed` is a fresh secure run, bit for bit what a deployment
/// computes. The weights are masked once at `init`.
public final class LocalDeployment: Sendable {
  public let embedder: SentenceEmbedder
  public let secure: SecureModel

  /// Opens the model folder and runs the one-time setup with `parameters` (SIGMA's recipe by
  /// default).
  public init(modelDirectory: String, parameters: RecipeParameters = .preset(.sigma)) async throws {
    embedder = try SentenceEmbedder(modelDirectory: modelDirectory)
    secure = try await SecureModel(
      model: embedder.bert, weights: try embedder.float64Weights(), parameters: parameters)
  }

  /// The sentence embedding of `text` (truncated to the model's limit), on secret shares.
  public func embed(_ text: String) async throws -> [Double] {
    try await secure.infer(ids: embedder.tokenize(text).ids).decoded
  }
}
