"""Chat formatting: the tokenizer's own chat template, or one the user names (base models).

spillover renders every conversation with the tokenizer's chat template. SmolLM2's template adds a
default system prompt ("You are a helpful AI assistant named SmolLM...") when none is given;
spillover keeps it, everywhere (data, training, eval), because that is the distribution the model
was instruction-tuned on and all arms see the same context.

A base checkpoint (e.g. converted from a GGUF file) often has no template. `load(spec,
chat_template=...)` then sets one on the tokenizer, so every caller of `render_chat` /
`chat_prompt` (data, training masks, eval, probes, serve, audit) formats the same way, and a
trained model saves it with its tokenizer. The value is a built-in name (`CHAT_TEMPLATES`) or a
Jinja file.
"""

from __future__ import annotations

from pathlib import Path

from spillover.errors import BadInputError, Problem

Messages = list[dict]

# "User: …\nAssistant: …" turns. Each assistant turn ends with the EOS token so a model trained on
# it learns to stop; SFT masks train from after "Assistant:" through that EOS.
PLAIN = (
    "{%- for message in messages -%}"
    "{%- if message['role'] == 'system' -%}{{ message['content'] + '\\n\\n' }}"
    "{%- elif message['role'] == 'user' -%}{{ 'User: ' + message['content'] + '\\n' }}"
    "{%- elif message['role'] == 'assistant' -%}{{ 'Assistant: ' + message['content'] + eos_token + '\\n' }}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ 'Assistant:' }}{%- endif -%}"
)

CHAT_TEMPLATES = {"plain": PLAIN}

# Text that ends an assistant turn under a built-in template even without the EOS token: a base
# model not yet tuned on the template answers and then writes the user's next turn itself.
TURN_END_TEXT = {PLAIN: ("\nUser:",)}

OPTION_HINT = "pass --chat-template plain (or a Jinja file), or set model.chat_template in the recipe"


def read_chat_template(value: str) -> str:
    """The Jinja text of a built-in template name or of a template file."""
    if value in CHAT_TEMPLATES:
        return CHAT_TEMPLATES[value]
    path = Path(value).expanduser()
    if not path.is_file():
        raise BadInputError(
            Problem(value, "chat_template", "neither a built-in chat template nor a file", f"use one of {sorted(CHAT_TEMPLATES)} or a Jinja file path")
        )
    text = path.read_text(encoding="utf-8")
    if "messages" not in text:
        raise BadInputError(Problem(str(path), "chat_template", "does not look like a chat template (it never reads `messages`)", "pass a Jinja chat template file"))
    return text


def turn_end_text(tokenizer) -> tuple[str, ...]:
    """Strings that end an answer under the tokenizer's template (none for the model's own templates)."""
    return TURN_END_TEXT.get(getattr(tokenizer, "chat_template", None) or "", ())


def render_chat(tokenizer, messages: Messages, *, generation_prompt: bool) -> str:
    """The conversation as text through the tokenizer's chat template (with the assistant header if asked)."""
    if not getattr(tokenizer, "chat_template", None):
        where = getattr(tokenizer, "name_or_path", "") or "model"
        raise BadInputError(Problem(str(where), "chat_template", "the tokenizer has no chat template (a base model?)", OPTION_HINT))
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=generation_prompt)


def chat_prompt(tokenizer, conversation: Messages | str) -> str:
    """The text a model sees before its answer. A bare string is one user turn."""
    if isinstance(conversation, str):
        conversation = [{"role": "user", "content": conversation}]
    return render_chat(tokenizer, conversation, generation_prompt=True)
