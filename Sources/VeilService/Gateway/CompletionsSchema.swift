// OpenAI's completions and chat-completions request and response bodies, as far as a greedy
// decoder on secret shares serves them: prompt or messages, max_tokens, stream; every response
// with usage and a finish reason ("stop" at the model's end-of-text token, else "length").
import Foundation

/// What both endpoints accept besides the prompt.
struct DecodingOptions: Decodable {
  var model: String
  var maxTokens: Int?
  var maxCompletionTokens: Int?
  var stream: Bool?
  var temperature: Double?
  var topP: Double?
  var n: Int?

  enum CodingKeys: String, CodingKey {
    case model, stream, temperature, n
    case maxTokens = "max_tokens"
    case maxCompletionTokens = "max_completion_tokens"
    case topP = "top_p"
  }
}

/// POST /v1/completions.
struct CompletionsRequest: Decodable {
  var prompt: String
  var options: DecodingOptions

  enum CodingKeys: String, CodingKey { case prompt }

  init(from decoder: any Decoder) throws {
    options = try DecodingOptions(from: decoder)
    let container = try decoder.container(keyedBy: CodingKeys.self)
    if let text = try? container.decode(String.self, forKey: .prompt) {
      prompt = text
    } else if let texts = try? container.decode([String].self, forKey: .prompt), texts.count == 1 {
      prompt = texts[0]
    } else {
      throw DecodingError.typeMismatch(
        String.self,
        .init(codingPath: [CodingKeys.prompt], debugDescription: "prompt must be one string"))
    }
  }
}

/// POST /v1/chat/completions.
struct ChatCompletionsRequest: Decodable {
  struct Message: Codable {
    var role: String
    var content: String
  }
  var messages: [Message]
  var options: DecodingOptions

  enum CodingKeys: String, CodingKey { case messages }

  init(from decoder: any Decoder) throws {
    options = try DecodingOptions(from: decoder)
    messages = try decoder.container(keyedBy: CodingKeys.self).decode(
      [Message].self, forKey: .messages)
  }
}

struct CompletionUsage: Encodable {
  var promptTokens: Int
  var completionTokens: Int
  var totalTokens: Int { promptTokens + completionTokens }

  enum CodingKeys: String, CodingKey {
    case promptTokens = "prompt_tokens"
    case completionTokens = "completion_tokens"
    case totalTokens = "total_tokens"
  }

  func encode(to encoder: any Encoder) throws {
    var container = encoder.container(keyedBy: CodingKeys.self)
    try container.encode(promptTokens, forKey: .promptTokens)
    try container.encode(completionTokens, forKey: .completionTokens)
    try container.encode(totalTokens, forKey: .totalTokens)
  }
}

/// A completion or one streamed chunk of it; `chat` picks the chat shapes (message or delta)
/// over the text ones.
struct CompletionBody: Encodable {
  struct Choice: Encodable {
    var index = 0
    var text: String?
    var message: ChatCompletionsRequest.Message?
    var delta: Delta?
    var finishReason: String?

    enum CodingKeys: String, CodingKey {
      case index, text, message, delta
      case finishReason = "finish_reason"
    }

    func encode(to encoder: any Encoder) throws {
      var container = encoder.container(keyedBy: CodingKeys.self)
      try container.encode(index, forKey: .index)
      try container.encodeIfPresent(text, forKey: .text)
      try container.encodeIfPresent(message, forKey: .message)
      try container.encodeIfPresent(delta, forKey: .delta)
      // OpenAI sends finish_reason null until the last choice.
      try container.encode(finishReason, forKey: .finishReason)
    }
  }
  struct Delta: Encodable {
    var role: String?
    var content: String?
  }

  var id: String
  var object: String
  var created: Int
  var model: String
  var choices: [Choice]
  var usage: CompletionUsage?
}
