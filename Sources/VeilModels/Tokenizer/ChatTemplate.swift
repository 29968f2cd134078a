// ChatTemplate owns wrapping a user's message in a chat model's template from
// `tokenizer_config.json`. Veil renders ChatML (`<|im_start|>role\ncontent<|im_end|>\n`, then the
// assistant's header), the template of SmolLM2, Qwen and many others, including a default system
// message the template inserts when the conversation has none. It does not evaluate Jinja: a
// template that is not ChatML is refused, never rendered approximately.
import Foundation

public struct ChatTemplate: Sendable, Equatable {
  /// The system message the template adds before a first non-system message, if any.
  public let defaultSystem: String?

  public init(defaultSystem: String?) { self.defaultSystem = defaultSystem }

  /// The template of a model folder's `tokenizer_config.json`.
  public init(modelDirectory directory: String) throws(ModelError) {
    let path = (directory as NSString).appendingPathComponent("tokenizer_config.json")
    guard let template = try readJSONObject(path: path)["chat_template"] as? String else {
      throw .unsupported(path: path, reason: "no chat_template (not a chat model)")
    }
    try self.init(template: template, path: path)
  }

  /// Recognises ChatML in a Jinja template and the default system message it may insert.
  public init(template: String, path: String) throws(ModelError) {
    // The template's string literals hold real newlines once tokenizer_config.json is parsed.
    let header = "'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>'"
    guard template.contains(header), template.contains("'<|im_start|>assistant\n'") else {
      throw .unsupported(path: path, reason: "a chat template other than ChatML")
    }
    let systemOpening = "'<|im_start|>system\n"
    if template.contains("messages[0]['role'] != 'system'"),
      let start = template.range(of: systemOpening),
      let end = template.range(of: "<|im_end|>", range: start.upperBound..<template.endIndex)
    {
      defaultSystem = String(template[start.upperBound..<end.lowerBound])
    } else {
      defaultSystem = nil
    }
  }

  /// The prompt text for one user message, ending in the assistant's header (what
  /// `apply_chat_template(…, add_generation_prompt=True)` renders).
  public func prompt(user: String, system: String? = nil) -> String {
    prompt(messages: (system.map { [("system", $0)] } ?? []) + [("user", user)])
  }

  /// The prompt text for a conversation of (role, content) messages, ending in the
  /// assistant's header; the default system message goes first when the first is not a
  /// system message.
  public func prompt(messages: [(role: String, content: String)]) -> String {
    var text = ""
    if messages.first?.role != "system", let defaultSystem {
      text += "<|im_start|>system\n\(defaultSystem)<|im_end|>\n"
    }
    for (role, content) in messages { text += "<|im_start|>\(role)\n\(content)<|im_end|>\n" }
    return text + "<|im_start|>assistant\n"
  }
}
