# The file-restore op of the shadowsnap.ec2 agent (docs/restore.md "files"): robocopy runs the controller built, each
# answered with its exit code and its text. A part of the agent script: agent_transport.py joins it into the frame
# (shadowsnap_agent.ps1), whose helpers it uses.
#
# The controller decides everything: the source (an exposed shadow copy or a read-only volume), the destination, the
# file patterns, what is copied (data, attributes, time stamps, security, owner) and whether existing files are
# overwritten. robocopy's exit code is a bit mask (8 and above: some copies failed); the controller judges it and
# parses the summary, so a failed job is an answer here, not an error.

$FilesCopyMaxJobs = 64

function Invoke-FilesCopy {
    # Each job of args.jobs ({arguments: [...]}) run as robocopy.exe with those arguments, in order.
    param($OpArgs)
    $jobs = @(Get-Property $OpArgs 'jobs' @())
    if ($jobs.Count -eq 0) {
        throw (New-AgentException -Message 'files_copy needs jobs')
    }
    if ($jobs.Count -gt $FilesCopyMaxJobs) {
        throw (New-AgentException -Message ("files_copy takes at most {0} jobs, not {1}" -f $FilesCopyMaxJobs, $jobs.Count))
    }
    $exe = Join-Path $SystemDir 'robocopy.exe'
    $answers = @()
    foreach ($job in $jobs) {
        $arguments = @(@(Get-Property $job 'arguments' @()) | ForEach-Object { [string]$_ })
        if (($arguments.Count -lt 2) -or (@($arguments | Where-Object { $_ -match '["\r\n]' }).Count -gt 0)) {
            throw (New-AgentException -Message 'each files_copy job needs a source, a destination and options without quotes or line breaks')
        }
        $run = Invoke-Native -FilePath $exe -ArgumentList $arguments -CodePage (Get-OemCodePage)
        $answers += [ordered]@{
            command = $run['command']
            exit_code = $run['exit_code']
            output = Limit-Text $run['text']
        }
    }
    return [ordered]@{
        jobs = $answers
    }
}
