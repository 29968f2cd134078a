// A completion's reply as the gateway sends it: whole (one JSON body) or streamed (server-sent
// events, one per token as the client role unmasks it, whole characters only, then [DONE]),
// in the text or the chat shape, cut at the model's end-of-text token.
import Foundation
import NIOCore
import VeilModels

/// What every body of one reply shares.
struct Reply: Sendable {
  let id: String
  let chat: Bool
  let model: String
  let created: Int
  let promptTokens: Int
  let text: DecoderText

  var object: String {
    chat ? (streamed ? "chat.completion.chunk" : "chat.completion") : "text_completion"
  }
  var streamed = false

  init(id: String, chat: Bool, model: String, created: Int, promptTokens: Int, text: DecoderText) {
    self.id = id
    self.chat = chat
    self.model = model
    self.created = created
    self.promptTokens = promptTokens
    self.text = text
  }

  /// "stop" when the model ended its reply, "length" when max_tokens did, and the tokens the
  /// reply used (its end-of-text token included).
  func finish(_ tokens: [Int]) -> (reason: String, used: Int) {
    let reply = text.reply(tokens)
    return reply.count < tokens.count ? ("stop", reply.count + 1) : ("length", tokens.count)
  }

  /// The whole completion of `tokens`.
  func whole(_ tokens: [Int]) -> CompletionBody {
    let content = text.text(text.reply(tokens))
    let (reason, used) = finish(tokens)
    var choice = CompletionBody.Choice(finishReason: reason)
    if chat {
      choice.message = .init(role: "assistant", content: content)
    } else {
      choice.text = content
    }
    return CompletionBody(
      id: id, object: object, created: created, model: model, choices: [choice],
      usage: CompletionUsage(promptTokens: promptTokens, completionTokens: used))
  }

  /// One streamed chunk.
  func chunk(content: String?, role: String? = nil, finish: String? = nil) -> CompletionBody {
    var choice = CompletionBody.Choice(finishReason: finish)
    if chat {
      choice.delta = .init(role: role, content: content)
    } else {
      choice.text = content ?? ""
    }
    return CompletionBody(
      id: id, object: object, created: created, model: model, choices: [choice], usage: nil)
  }
}

/// Turns tokens into server-sent events as they arrive.
final class ReplyStream: @unchecked Sendable {
  // @unchecked: every field is touched under `lock`.
  private var reply: Reply
  private let sink: AsyncStream<ByteBuffer>.Continuation
  private let lock = NSLock()
  private var ids: [Int] = []
  private var sent = ""
  private var ended = false

  init(reply: Reply, sink: AsyncStream<ByteBuffer>.Continuation) {
    var reply = reply
    reply.streamed = true
    self.reply = reply
    self.sink = sink
  }

  private func send(_ body: some Encodable) {
    let encoder = JSONEncoder()
    encoder.outputFormatting = .withoutEscapingSlashes
    guard let json = try? encoder.encode(body) else { return }
    sink.yield(ByteBuffer(bytes: Array("data: ".utf8) + json + Array("\n\n".utf8)))
  }

  private func end(_ reason: String) {
    ended = true
    send(reply.chunk(content: nil, finish: reason))
    sink.yield(ByteBuffer(string: "data: [DONE]\n\n"))
    sink.finish()
  }

  /// The chat shape's first chunk names the role.
  func start() {
    guard reply.chat else { return }
    lock.withLock { send(reply.chunk(content: "", role: "assistant")) }
  }

  func add(_ token: Int) {
    lock.withLock {
      guard !ended else { return }
      if token == reply.text.endOfText { return end("stop") }
      ids.append(token)
      let text = reply.text.text(ids)
      guard !text.hasSuffix("\u{FFFD}"), text.hasPrefix(sent), text.count > sent.count else {
        return
      }
      send(reply.chunk(content: String(text.dropFirst(sent.count))))
      sent = text
    }
  }

  /// The run produced every token without an end-of-text one.
  func finish() { lock.withLock { if !ended { end("length") } } }

  /// The run failed: the error object as the last event.
  func fail(_ error: APIError) {
    lock.withLock {
      guard !ended else { return }
      ended = true
      send(error)
      sink.finish()
    }
  }
}
