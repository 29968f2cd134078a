// What the gateway runs a completion on: a secure generator, either the client of a real
// deployment that serves a decoder (`VeilClient`) or every role in this process
// (`LocalGenerator`). The prompt is tokenized here; the servers see neither it nor the reply.
import Foundation
import VeilMPC
import VeilModels

/// The public facts of a decoder a generator serves.
public struct PublicDecoder: Sendable {
  public let config: ModelConfig
  public let text: DecoderText
  public let parameters: RecipeParameters
}

/// A decoder on secret shares.
public protocol SecureGenerator: Sendable {
  func publicDecoder() async throws -> PublicDecoder
  /// `newTokens` greedy tokens after `ids`, each handed to `onToken` as the client unmasks it.
  func generate(ids: [Int], newTokens: Int, onToken: @escaping @Sendable (Int) async -> Void)
    async throws -> [Int]
}

/// A decoder set up once with every role in this process.
public final class LocalGenerator: SecureGenerator {
  public let folder: DecoderFolder
  public let secure: SecureModel

  public init(modelDirectory: String, parameters: RecipeParameters) async throws {
    folder = try DecoderFolder(modelDirectory: modelDirectory)
    secure = try await SecureModel(
      model: folder.model, weights: try folder.float64Weights(), parameters: parameters)
  }

  public func publicDecoder() async throws -> PublicDecoder {
    PublicDecoder(config: folder.config, text: folder.text, parameters: secure.parameters)
  }

  public func generate(
    ids: [Int], newTokens: Int, onToken: @escaping @Sendable (Int) async -> Void
  ) async throws -> [Int] {
    try await secure.generate(ids: ids, newTokens: newTokens) { await onToken($0.token) }.tokens
  }
}

extension VeilClient: SecureGenerator {
  public func publicDecoder() async throws -> PublicDecoder {
    let decoder = try await cachedDecoder()
    return PublicDecoder(
      config: decoder.config, text: decoder.text, parameters: decoder.manifest.parameters)
  }

  public func generate(
    ids: [Int], newTokens: Int, onToken: @escaping @Sendable (Int) async -> Void
  ) async throws -> [Int] {
    let decoder = try await cachedDecoder()
    do {
      return try await generate(ids: ids, newTokens: newTokens, decoder: decoder) {
        await onToken($1)
      }.0
    } catch {
      forgetModel()
      throw error
    }
  }
}
