"""A tiny causal LM and a character-level tokenizer, built locally: the offline policy.

Nothing is downloaded. ``build_tiny_policy(path)`` writes an ordinary Hugging Face folder that
``AutoModelForCausalLM.from_pretrained(path)`` and ``AutoTokenizer.from_pretrained(path)`` load, so the
same training and evaluation code runs on it and on a real checkpoint.
"""

from __future__ import annotations

import string
from pathlib import Path

import torch
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedModel, PreTrainedTokenizerFast

PAD, EOS, UNK = "<pad>", "<eos>", "<unk>"
CHARACTERS = "\n" + "".join(ch for ch in string.printable if ch.isprintable())


def build_char_tokenizer(characters: str = CHARACTERS) -> PreTrainedTokenizerFast:
    """One token per character, plus <pad>, <eos> and <unk>; decoding concatenates characters."""
    vocab = {token: index for index, token in enumerate([PAD, EOS, UNK, *dict.fromkeys(characters)])}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token=UNK))
    backend.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
    backend.decoder = decoders.Fuse()
    return PreTrainedTokenizerFast(
        tokenizer_object=backend, pad_token=PAD, eos_token=EOS, unk_token=UNK, padding_side="left"
    )


def build_tiny_model(
    vocab_size: int,
    hidden_size: int = 128,
    num_layers: int = 4,
    num_heads: int = 4,
    max_positions: int = 512,
    seed: int = 0,
    pad_token_id: int = 0,
    eos_token_id: int = 1,
) -> PreTrainedModel:
    """A Llama-architecture causal LM with random weights (about 1M parameters at the defaults)."""
    config = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=hidden_size,
        intermediate_size=4 * hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        num_key_value_heads=max(1, num_heads // 2),
        max_position_embeddings=max_positions,
        tie_word_embeddings=True,
        pad_token_id=pad_token_id,
        bos_token_id=eos_token_id,
        eos_token_id=eos_token_id,
    )
    torch.manual_seed(seed)
    return LlamaForCausalLM(config)


def build_tiny_policy(path: str | Path, seed: int = 0, **model_kwargs) -> Path:
    """Write a tokenizer and a randomly initialised tiny model to ``path``; return the path."""
    path = Path(path)
    tokenizer = build_char_tokenizer()
    model = build_tiny_model(
        len(tokenizer),
        seed=seed,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        **model_kwargs,
    )
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    path.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path
