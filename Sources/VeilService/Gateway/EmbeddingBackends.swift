// What the gateway runs a request on: a secure embedder, either the client of a real
// deployment (`VeilClient`: the text is tokenized and masked here, the servers see neither)
// or every role in this process (`LocalDeployment`, for trying it out). Both give the same
// vectors bit for bit.
import Foundation
import VeilMPC
import VeilModels

/// The public facts of the model an embedder serves: its config and tokenizer.
public struct PublicModel: Sendable {
  public let config: ModelConfig
  public let tokenizer: WordPieceTokenizer
  /// The recipe the secure runs use.
  public let parameters: RecipeParameters
}

/// A sentence-embedding model on secret shares.
public protocol SecureEmbedder: Sendable {
  /// The served model's public facts (a deployment's come from P0's model card).
  func publicModel() async throws -> PublicModel
  /// The embedding of `ids` (tokenized with `publicModel()`'s tokenizer): one fresh secure run;
  /// with `padTo`, padded to a bucket with the real length a secret input.
  func embed(ids: [Int], padTo: Int?) async throws -> [Double]
}

extension LocalDeployment: SecureEmbedder {
  public func publicModel() async throws -> PublicModel {
    PublicModel(
      config: embedder.config, tokenizer: embedder.tokenizer, parameters: secure.parameters)
  }

  public func embed(ids: [Int], padTo: Int?) async throws -> [Double] {
    guard let padTo else { return try await secure.infer(ids: ids).decoded }
    let padded = try HiddenLengthInputs.pad(
      ids, to: padTo, limit: embedder.config.tokenLimit, padID: Int(embedder.tokenizer.padId))
    return try await secure.infer(ids: padded, hidingLength: ids.count).decoded
  }
}

extension VeilClient: SecureEmbedder {
  public func publicModel() async throws -> PublicModel {
    let model = try await cachedModel()
    return PublicModel(
      config: model.config, tokenizer: model.tokenizer, parameters: model.manifest.parameters)
  }

  public func embed(ids: [Int], padTo: Int?) async throws -> [Double] {
    let model = try await cachedModel()
    do {
      return try await embed(ids: ids, model: model, padTo: padTo).0
    } catch {
      // The deployment may have been set up anew: read the card again next time.
      forgetModel()
      throw error
    }
  }
}
