"""The twin's file-restore op: ``files_copy``, carried out on the host's model the way the agent's files_ops.ps1 runs
robocopy.exe (lab.windows.robocopy): each job's command, exit code and text, a failed copy answered, not raised."""

from ..locales import console_bytes
from ..robocopy import run_robocopy
from .protocol import FILES_COPY_MAX_JOBS, OUTPUT_LIMIT, AgentError
from .read_ops import tool_text


def files_copy(host, args):
    model = host.model
    jobs = args.get("jobs") or []
    jobs = jobs if isinstance(jobs, list) else [jobs]
    if not jobs:
        raise AgentError("files_copy needs jobs")
    if len(jobs) > FILES_COPY_MAX_JOBS:
        raise AgentError("files_copy takes at most %d jobs, not %d" % (FILES_COPY_MAX_JOBS, len(jobs)))
    answers = []
    for job in jobs:
        arguments = [str(argument) for argument in ((job or {}).get("arguments") or [])] if isinstance(job, dict) else []
        if len(arguments) < 2 or any(mark in argument for argument in arguments for mark in ('"', "\r", "\n")):
            raise AgentError("each files_copy job needs a source, a destination and options without quotes or line breaks")
        text, exit_code = run_robocopy(model, arguments)
        answers.append({"command": " ".join(["robocopy.exe"] + arguments), "exit_code": exit_code,
                        "output": tool_text(model, console_bytes(text, model.locale.oem_code_page))[:OUTPUT_LIMIT]})
    return {"jobs": answers}
