// The wire types of the gateway's OpenAI-compatible endpoints (platform.openai.com's
// embeddings and models schemas): requests as clients send them, responses and the error
// object as OpenAI's SDKs parse them.
import Foundation

/// `POST /v1/embeddings`' body. `input` is a string, an array of strings, an array of token
/// ids, or an array of such arrays.
struct EmbeddingsRequest: Decodable {
  enum Input {
    case texts([String])
    case tokens([[Int]])
  }

  var input: Input
  var model: String
  /// "float" (default) or "base64" (little-endian float32, as OpenAI's SDKs decode it).
  var encodingFormat: String?
  var dimensions: Int?
  var user: String?

  enum CodingKeys: String, CodingKey {
    case input, model, dimensions, user
    case encodingFormat = "encoding_format"
  }

  init(from decoder: any Decoder) throws {
    let container = try decoder.container(keyedBy: CodingKeys.self)
    model = try container.decode(String.self, forKey: .model)
    encodingFormat = try container.decodeIfPresent(String.self, forKey: .encodingFormat)
    dimensions = try container.decodeIfPresent(Int.self, forKey: .dimensions)
    user = try container.decodeIfPresent(String.self, forKey: .user)
    if let text = try? container.decode(String.self, forKey: .input) {
      input = .texts([text])
    } else if let texts = try? container.decode([String].self, forKey: .input) {
      input = .texts(texts)
    } else if let ids = try? container.decode([Int].self, forKey: .input) {
      input = .tokens([ids])
    } else if let lists = try? container.decode([[Int]].self, forKey: .input) {
      input = .tokens(lists)
    } else {
      throw DecodingError.dataCorruptedError(
        forKey: .input, in: container,
        debugDescription: "input must be a string, an array of strings, or token-id arrays")
    }
  }
}

/// One vector of the response: numbers, or base64 of little-endian float32.
enum EmbeddingVector: Encodable {
  case float([Double])
  case base64(String)

  func encode(to encoder: any Encoder) throws {
    var container = encoder.singleValueContainer()
    switch self {
    case .float(let values): try container.encode(values)
    case .base64(let text): try container.encode(text)
    }
  }

  init(_ values: [Double], base64: Bool) {
    guard base64 else {
      self = .float(values)
      return
    }
    var bytes = [UInt8]()
    bytes.reserveCapacity(values.count * 4)
    for value in values {
      withUnsafeBytes(of: Float(value).bitPattern.littleEndian) { bytes.append(contentsOf: $0) }
    }
    self = .base64(Data(bytes).base64EncodedString())
  }
}

struct EmbeddingsResponse: Encodable {
  struct Item: Encodable {
    var object = "embedding"
    var index: Int
    var embedding: EmbeddingVector
  }

  struct Usage: Encodable {
    var promptTokens: Int
    var totalTokens: Int

    enum CodingKeys: String, CodingKey {
      case promptTokens = "prompt_tokens"
      case totalTokens = "total_tokens"
    }
  }

  var object = "list"
  var data: [Item]
  var model: String
  var usage: Usage
}

struct ModelList: Encodable {
  struct Model: Encodable {
    var id: String
    var object = "model"
    var created: Int
    var ownedBy: String

    enum CodingKeys: String, CodingKey {
      case id, object, created
      case ownedBy = "owned_by"
    }
  }

  var object = "list"
  var data: [Model]
}

/// OpenAI's error object, with the HTTP status it is sent with.
struct APIError: Error, Encodable, CustomStringConvertible {
  struct Body: Encodable {
    var message: String
    var type: String
    var param: String?
    var code: String?
  }

  var status: Int
  var error: Body

  enum CodingKeys: String, CodingKey { case error }

  var description: String { "\(status) \(error.code ?? error.type): \(error.message)" }

  static func invalid(_ message: String, param: String? = nil, code: String? = nil) -> APIError {
    APIError(
      status: 400,
      error: Body(message: message, type: "invalid_request_error", param: param, code: code))
  }

  static func tooLong(_ message: String) -> APIError {
    APIError(
      status: 413,
      error: Body(
        message: message, type: "invalid_request_error", param: "input",
        code: "context_length_exceeded"))
  }

  static func notFound(_ message: String, code: String) -> APIError {
    APIError(status: 404, error: Body(message: message, type: "invalid_request_error", code: code))
  }

  static func unavailable(_ message: String, code: String) -> APIError {
    APIError(status: 503, error: Body(message: message, type: "server_error", code: code))
  }

  static func internalError(_ message: String) -> APIError {
    APIError(
      status: 500, error: Body(message: message, type: "server_error", code: "internal_error"))
  }
}
