// DecoderFolder owns opening a decoder model folder in Hugging Face layout (config.json,
// model.safetensors, tokenizer files, and tokenizer_config.json's chat template when there is
// one): GPT-2 (Conv1D checkpoints, read by GPT2Checkpoint) or LLaMA (LlamaForCausalLM names).
// Every weight's presence, dtype and shape is checked before a value is read.
import Foundation

public struct DecoderFolder: Sendable {
  public let directory: String
  public let config: ModelConfig
  public let model: any DecoderGraph
  /// The tokenizer, chat template and end-of-text token.
  public let text: DecoderText
  let weightsFile: SafeTensorsFile

  public init(modelDirectory directory: String) throws(ModelError) {
    self.directory = directory
    config = try ModelConfig(modelDirectory: directory)
    model = try Self.graph(config, directory: directory)
    text = try DecoderText(modelDirectory: directory)
    weightsFile = try SafeTensorsFile(
      path: (directory as NSString).appendingPathComponent("model.safetensors"))
    if config.architecture == .llama {
      for (id, shape) in model.expectedWeights {
        guard let entry = weightsFile.entries[id.name] else {
          throw .missingTensor(path: weightsFile.path, tensor: id.name)
        }
        guard entry.shape == shape else {
          throw .shapeMismatch(
            path: weightsFile.path, tensor: id.name, expected: shape, found: entry.shape)
        }
        guard entry.dtype.isReadableAsFloat else {
          throw .unsupported(
            path: weightsFile.path, reason: "tensor '\(id.name)' has dtype \(entry.dtype.rawValue)")
        }
      }
    }
  }

  /// The decoder graph a config describes.
  public static func graph(_ config: ModelConfig, directory: String) throws(ModelError)
    -> any DecoderGraph
  {
    switch config.architecture {
    case .gpt2: return GPT2Model(config: config)
    case .llama: return LlamaModel(config: config)
    case .bert:
      throw .unsupported(
        path: (directory as NSString).appendingPathComponent("config.json"),
        reason: "generation needs a decoder (GPT-2 or LLaMA), this is BERT")
    }
  }

  /// Every weight as Float64, in the graph's names and layout.
  public func float64Weights() throws(ModelError) -> Float64Weights {
    if let gpt2 = model as? GPT2Model { return try gpt2.weights(from: weightsFile) }
    let weights = try Float64Weights(file: weightsFile, expected: model.expectedWeights)
    if config.tiedEmbeddings, weightsFile.entries["lm_head.weight"] != nil {
      let head = try weightsFile.floats(
        "lm_head.weight", expectedShape: [config.vocabularySize, config.hiddenSize])
      guard head.scalars == weights.tensors[LlamaModel(config: config).tokenTable]?.scalars else {
        throw .unsupported(
          path: weightsFile.path, reason: "tie_word_embeddings with a different lm_head.weight")
      }
    }
    return weights
  }
}

/// A decoder's public text side, what a remote client has too: the tokenizer, the chat
/// template (chat models), the token a plain prompt starts with, and the token that ends a reply.
public struct DecoderText: Sendable {
  public let tokenizer: ModelTokenizer
  /// The ChatML template, when the folder has one Veil renders.
  public let chat: ChatTemplate?
  /// Why the folder's chat template is not rendered (a template other than ChatML), so that
  /// only a chat request fails, not the folder.
  let chatRefusal: ModelError?
  /// tokenizer_config's bos_token when add_bos_token is true (LLaMA-2): `transformers` puts it
  /// before a plain prompt.
  public let beginOfText: Int?
  /// tokenizer_config's eos_token, when it is one token.
  public let endOfText: Int?

  public init(modelDirectory directory: String) throws(ModelError) {
    tokenizer = try ModelTokenizer(modelDirectory: directory)
    let configPath = (directory as NSString).appendingPathComponent("tokenizer_config.json")
    var chat: ChatTemplate? = nil
    var chatRefusal: ModelError? = nil
    var beginOfText: Int? = nil
    var endOfText: Int? = nil
    if FileManager.default.fileExists(atPath: configPath) {
      let object = try readJSONObject(path: configPath)
      if let template = object["chat_template"] as? String {
        do { chat = try ChatTemplate(template: template, path: configPath) } catch {
          chatRefusal = error
        }
      }
      // A special token is written as its text, or (older files) as an object with "content".
      let tokenizer = tokenizer
      func singleToken(_ key: String) -> Int? {
        let value = object[key]
        guard let text = value as? String ?? (value as? [String: Any])?["content"] as? String,
          case let ids = tokenizer.encode(text), ids.count == 1
        else { return nil }
        return ids[0]
      }
      endOfText = singleToken("eos_token")
      if object["add_bos_token"] as? Bool == true { beginOfText = singleToken("bos_token") }
    }
    self.chat = chat
    self.chatRefusal = chatRefusal
    self.beginOfText = beginOfText
    self.endOfText = endOfText
  }

  /// The prompt's token ids: the text as it is (after the begin-of-text token where the model
  /// wants one), or wrapped in the chat template.
  public func promptIds(_ text: String, chat wrap: Bool) throws(ModelError) -> [Int] {
    guard wrap else { return (beginOfText.map { [$0] } ?? []) + tokenizer.encode(text) }
    guard let chat else {
      throw chatRefusal
        ?? .unsupported(
          path: "tokenizer_config.json", reason: "--chat: the model has no chat template")
    }
    return tokenizer.encode(chat.prompt(user: text))
  }

  /// The text of generated ids (special tokens kept).
  public func text(_ ids: [Int]) -> String { tokenizer.decode(ids) }

  /// The reply in `ids`: up to (not including) the first end-of-text token.
  public func reply(_ ids: [Int]) -> [Int] {
    guard let endOfText, let stop = ids.firstIndex(of: endOfText) else { return ids }
    return Array(ids[..<stop])
  }
}
