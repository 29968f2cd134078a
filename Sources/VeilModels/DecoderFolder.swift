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
/// template (chat models) and the token that ends a reply.
public struct DecoderText: Sendable {
  public let tokenizer: ModelTokenizer
  public let chat: ChatTemplate?
  /// tokenizer_config's eos_token, when it is one token.
  public let endOfText: Int?

  public init(modelDirectory directory: String) throws(ModelError) {
    tokenizer = try ModelTokenizer(modelDirectory: directory)
    let configPath = (directory as NSString).appendingPathComponent("tokenizer_config.json")
    var chat: ChatTemplate? = nil
    var endOfText: Int? = nil
    if FileManager.default.fileExists(atPath: configPath) {
      let object = try readJSONObject(path: configPath)
      if let template = object["chat_template"] as? String {
        chat = try ChatTemplate(template: template, path: configPath)
      }
      if let eos = object["eos_token"] as? String, case let ids = tokenizer.encode(eos),
        ids.count == 1
      {
        endOfText = ids[0]
      }
    }
    self.chat = chat
    self.endOfText = endOfText
  }

  /// The prompt's token ids: the text as it is, or wrapped in the chat template.
  public func promptIds(_ text: String, chat wrap: Bool) throws(ModelError) -> [Int] {
    guard wrap else { return tokenizer.encode(text) }
    guard let chat else {
      throw .unsupported(
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
