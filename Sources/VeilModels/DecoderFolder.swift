// DecoderFolder owns opening a decoder model folder in Hugging Face layout (config.json,
// model.safetensors, tokenizer files, and tokenizer_config.json's chat template when there is
// one): GPT-2 (Conv1D checkpoints, read by GPT2Checkpoint) or LLaMA (LlamaForCausalLM names).
// Every weight's presence, dtype and shape is checked before a value is read.
import Foundation

public struct DecoderFolder: Sendable {
  public let directory: String
  public let config: ModelConfig
  public let model: any DecoderGraph
  public let tokenizer: ModelTokenizer
  /// The chat template, for chat models.
  public let chat: ChatTemplate?
  /// The token that ends a reply (tokenizer_config's eos_token), when named.
  public let endOfText: Int?
  let weightsFile: SafeTensorsFile

  public init(modelDirectory directory: String) throws(ModelError) {
    self.directory = directory
    config = try ModelConfig(modelDirectory: directory)
    switch config.architecture {
    case .gpt2: model = GPT2Model(config: config)
    case .llama: model = LlamaModel(config: config)
    case .bert:
      throw .unsupported(
        path: (directory as NSString).appendingPathComponent("config.json"),
        reason: "generation needs a decoder (GPT-2 or LLaMA), this is BERT")
    }
    tokenizer = try ModelTokenizer(modelDirectory: directory)
    weightsFile = try SafeTensorsFile(
      path: (directory as NSString).appendingPathComponent("model.safetensors"))
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

  /// The prompt's token ids: the text as it is, or wrapped in the chat template.
  public func promptIds(_ text: String, chat wrap: Bool) throws(ModelError) -> [Int] {
    guard wrap else { return tokenizer.encode(text) }
    guard let chat else {
      throw .unsupported(path: directory, reason: "--chat: the model has no chat template")
    }
    return tokenizer.encode(chat.prompt(user: text))
  }

  /// The text of generated ids (special tokens kept).
  public func text(_ ids: [Int]) -> String { tokenizer.decode(ids) }
}
