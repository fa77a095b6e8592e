"""Synthetic preference data and a tiny backbone, built in-process (no downloads)."""

from __future__ import annotations

import random
from pathlib import Path

from training.ml.pairs import JudgmentRecord

MARKER = "great"
"""The word annotators (synthetically) prefer; as long as every filler word, so length gives nothing away."""
CUE = "shiny"
"""A second winning word: in the ensemble test it always comes with MARKER in training, and apart out of it."""
FILLER_A = [f"wa{i:03d}" for i in range(30)]
"""In-distribution vocabulary: training and held-out pairs."""
FILLER_B = [f"wb{i:03d}" for i in range(30)]
"""Out-of-distribution vocabulary: in the tokenizer, never in a training pair."""


def build_tiny_backbone(folder: Path, *, words: list[str], arch: str = "bert") -> str:
    """Save a tiny randomly initialised backbone plus a word-level tokenizer to ``folder``; return its path."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers, processors, trainers
    from transformers import BertConfig, BertModel, LlamaConfig, LlamaModel, PreTrainedTokenizerFast

    corpus = [" ".join(words[i : i + 8]) for i in range(0, len(words), 8)] + ["q", "prompt"]
    tok = Tokenizer(models.WordLevel(unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    special = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "</s>"]
    tok.train_from_iterator(corpus, trainers.WordLevelTrainer(special_tokens=special))
    torch.manual_seed(0)  # the same "pretrained" weights whichever test builds the backbone first
    if arch == "bert":
        cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
        tok.post_processor = processors.TemplateProcessing(
            single="[CLS] $A [SEP]", special_tokens=[("[CLS]", cls), ("[SEP]", sep)]
        )
        tokenizer = PreTrainedTokenizerFast(
            tokenizer_object=tok, pad_token="[PAD]", unk_token="[UNK]", cls_token="[CLS]", sep_token="[SEP]"
        )
        config = BertConfig(
            vocab_size=tok.get_vocab_size(),
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=2,
            intermediate_size=64,
            max_position_embeddings=128,
            hidden_dropout_prob=0.0,
            attention_probs_dropout_prob=0.0,
        )
        model = BertModel(config)
    else:  # a causal LM: no post-processor, eos appended by the reward code, last-token pooling
        tokenizer = PreTrainedTokenizerFast(
            tokenizer_object=tok, pad_token="[PAD]", unk_token="[UNK]", eos_token="</s>"
        )
        config = LlamaConfig(
            vocab_size=tok.get_vocab_size(),
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=2,
            num_key_value_heads=2,
            max_position_embeddings=128,
            pad_token_id=tokenizer.pad_token_id,
        )
        model = LlamaModel(config)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


CHAT_TEMPLATE = (
    "{% for message in messages %}<|{{ message['role'] }}|> {{ message['content'] }} </s> {% endfor %}"
    "{% if add_generation_prompt %}<|assistant|> {% endif %}"
)
"""A minimal chat template: ``<|user|> … </s> <|assistant|> … </s>``. The prompt rendered with the generation prompt
is a token prefix of the whole dialogue, so the response tokens are exactly what follows it (as TRL assumes)."""


def build_tiny_causal_lm(folder: Path, *, words: list[str]) -> str:
    """Save a tiny randomly initialised ``LlamaForCausalLM`` (2 layers, hidden 32) and a word-level tokenizer with
    pad and eos tokens and :data:`CHAT_TEMPLATE` to ``folder``; return its path: a local policy "model id".

    ``tokenizer.apply_chat_template([{"role": "user", "content": ...}], add_generation_prompt=True)`` works on it, and
    ``generate`` stops at ``</s>``.
    """
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    corpus = [" ".join(words[i : i + 8]) for i in range(0, len(words), 8)] + ["q", "prompt"]
    tok = Tokenizer(models.WordLevel(unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.decoder = decoders.WordPiece(prefix="##")  # joins words with spaces, as the whitespace split expects
    # Role markers are special tokens, so the whitespace pre-tokenizer never splits "<|user|>" into pieces.
    special = ["[PAD]", "[UNK]", "</s>", "<|user|>", "<|assistant|>", "<|system|>"]
    tok.train_from_iterator(corpus, trainers.WordLevelTrainer(special_tokens=special))
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token="[PAD]",
        unk_token="[UNK]",
        eos_token="</s>",
        additional_special_tokens=["<|user|>", "<|assistant|>", "<|system|>"],
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    torch.manual_seed(0)  # the same "pretrained" weights whichever test builds the model first
    config = LlamaConfig(
        vocab_size=tok.get_vocab_size(),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=256,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=None,
        tie_word_embeddings=False,
        # LoRA leaves the LM head alone, and with the default 0.02 its rows are so small that no adapter can move
        # a logit by much (margins saturate near 0.2); 0.1 lets the tiny model learn the marker clearly.
        initializer_range=0.1,
    )
    model = LlamaForCausalLM(config)
    model.generation_config = GenerationConfig(eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


def marker_judgments(
    n: int,
    *,
    seed: int,
    filler: list[str] = FILLER_A,
    winner_words: tuple[str, ...] = (MARKER,),
    loser_words: tuple[str, ...] = (),
    start_id: int = 0,
) -> list[JudgmentRecord]:
    """``n`` pairwise judgments, one prompt each, where the candidate containing ``winner_words`` wins.

    The loser contains ``loser_words`` and is padded with filler words to the winner's word count, and all words
    have five letters, so length gives nothing away; the winner is shown left or right at random.
    """
    rng = random.Random(seed)
    out = []
    for i in range(start_id, start_id + n):
        k = rng.randint(3, 8)
        words = [rng.choice(filler) for _ in range(k)]
        winner, loser = list(words), list(words)
        for word in winner_words:
            winner.insert(rng.randint(0, len(winner)), word)
        for j in range(len(winner_words)):
            loser.insert(rng.randint(0, len(loser)), loser_words[j] if j < len(loser_words) else rng.choice(filler))
        texts = {f"c{i}a": " ".join(winner), f"c{i}b": " ".join(loser)}
        shown = sorted(texts, key=lambda _: rng.random())  # left/right order as an annotator might have seen it
        out.append(
            JudgmentRecord(
                judgment_id=i,
                comparison_id=i,
                prompt_id=i,
                prompt_text="q " + " ".join(rng.choice(filler) for _ in range(3)),
                candidates={c: texts[c] for c in shown},
                winner=f"c{i}a",
                annotator_id="sim",
            )
        )
    return out
