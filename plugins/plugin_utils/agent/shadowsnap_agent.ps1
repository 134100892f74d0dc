# shadowsnap-agent protocol=1
#
# The shadowsnap.ec2 agent: the only code of the collection that runs on Windows. The controller sends it
# with every request (plugins/plugin_utils/agent_transport.py, docs/agent-protocol.md) and it answers with
# exactly one JSON document on standard output.
#
# It stays thin on purpose: raw properties of cmdlets and WMI/CIM classes, raw text of native tools, raw facts of
# the session's run directory. Joining, mapping, parsing and judging happen in Python on the controller, where they
# are tested.
#
# This file is the frame: the shared helpers, the dispatch and the main code. The transport puts the generated
# $Shadowsnap constants (the op lists and their handlers, run-file names, patterns... owned by the controller's
# Python), the C# helper (VolumeExtents.cs) and the other parts (read_ops.ps1, session_ops.ps1) in place of the marker
# line below, and sends the result as one script.
#
# Rules: Windows PowerShell 5.1 compatible (no ??, no ternary, no -AsHashtable), ASCII only, every failure
# caught and answered as the error document, with the HRESULT when there is one.
param($RequestJson)

Set-StrictMode -Version 2.0
$ErrorActionPreference = 'Stop'
$ProgressPreference = 'SilentlyContinue'

# @shadowsnap-agent-parts@

$JsonDepth = 8
$OutputLimit = 65536

# A 32-bit PowerShell on 64-bit Windows sees the 64-bit tools through Sysnative only.
$SystemDir = Join-Path $env:SystemRoot 'System32'
$NativeDir = Join-Path $env:SystemRoot 'Sysnative'
if (Test-Path -LiteralPath $NativeDir) {
    $SystemDir = $NativeDir
}

function Get-Property {
    # The value of a property or dictionary key that may be absent (Set-StrictMode forbids reading a missing one).
    param($InputObject, $Name, $Default = $null)
    if ($null -eq $InputObject) {
        return $Default
    }
    if ($InputObject -is [System.Collections.IDictionary]) {
        if ($InputObject.Contains($Name)) {
            return $InputObject[$Name]
        }
        return $Default
    }
    $property = $InputObject.PSObject.Properties[$Name]
    if ($null -eq $property) {
        return $Default
    }
    return $property.Value
}

function New-AgentException {
    # An exception that carries what the error document reports besides the message.
    param($Message, $Command = $null, $ExitCode = $null, $Output = $null, $HResult = $null)
    $exception = New-Object -TypeName System.Exception -ArgumentList $Message
    $exception.Data['shadowsnap_command'] = $Command
    $exception.Data['shadowsnap_exit_code'] = $ExitCode
    $exception.Data['shadowsnap_output'] = $Output
    $exception.Data['shadowsnap_hresult'] = $HResult
    return $exception
}

function Get-HResultFromText {
    # The failure HRESULT a native tool printed after a label (diskshadow: "- Returned HRESULT: 80042306"),
    # found by structure because the label is translated.
    param($Text)
    if (-not $Text) {
        return $null
    }
    $match = [regex]::Match([string]$Text, '(?m)[:\uFF1A]\s*(?:0x)?(8[0-9A-Fa-f]{7})\s*$')
    if ($match.Success) {
        return '0x' + $match.Groups[1].Value.ToUpperInvariant()
    }
    return $null
}

function Get-HResultFromException {
    # The first HRESULT of the exception chain that says more than "a .NET exception" (0x8013xxxx).
    param($Exception)
    $current = $Exception
    while ($null -ne $current) {
        $code = [int]$current.HResult
        $text = '0x{0:X8}' -f $code
        if (($code -ne 0) -and (-not $text.StartsWith('0x8013'))) {
            return $text
        }
        $current = $current.InnerException
    }
    return $null
}

function Limit-Text {
    param($Text)
    if ($null -eq $Text) {
        return $null
    }
    $value = [string]$Text
    if ($value.Length -gt $OutputLimit) {
        return $value.Substring(0, $OutputLimit)
    }
    return $value
}

function Get-RegistryValue {
    param($Path, $Name)
    $item = Get-ItemProperty -LiteralPath $Path -ErrorAction SilentlyContinue
    return (Get-Property $item $Name)
}

function Get-OemCodePage {
    $value = Get-RegistryValue 'HKLM:\SYSTEM\CurrentControlSet\Control\Nls\CodePage' 'OEMCP'
    if ($value) {
        return [int]$value
    }
    return [System.Globalization.CultureInfo]::CurrentCulture.TextInfo.OEMCodePage
}

function Get-AnsiCodePage {
    $value = Get-RegistryValue 'HKLM:\SYSTEM\CurrentControlSet\Control\Nls\CodePage' 'ACP'
    if ($value) {
        return [int]$value
    }
    return [System.Globalization.CultureInfo]::CurrentCulture.TextInfo.ANSICodePage
}

function Invoke-Native {
    # Runs a native tool with the console's OEM code page as output encoding, so that PowerShell decodes its
    # localized text correctly, and returns the text and the exit code. The caller judges the exit code.
    param($FilePath, $ArgumentList, $CodePage)
    $command = (@([System.IO.Path]::GetFileName($FilePath)) + @($ArgumentList)) -join ' '
    if (-not (Test-Path -LiteralPath $FilePath)) {
        throw (New-AgentException -Message "$FilePath does not exist on this host" -Command $command)
    }
    $previousEncoding = $null
    try {
        $previousEncoding = [Console]::OutputEncoding
        [Console]::OutputEncoding = [System.Text.Encoding]::GetEncoding([int]$CodePage)
    }
    catch {
        # No console (PSRP): PowerShell decodes native output with its default, the OEM code page.
        $previousEncoding = $null
    }
    $lines = $null
    $exitCode = $null
    try {
        # Native stderr lines become error records with 2>&1; with 'Stop' the first one would end the run.
        $ErrorActionPreference = 'Continue'
        $lines = & $FilePath @ArgumentList 2>&1
        $exitCode = $LASTEXITCODE
    }
    finally {
        $ErrorActionPreference = 'Stop'
        if ($null -ne $previousEncoding) {
            try {
                [Console]::OutputEncoding = $previousEncoding
            }
            catch {
                # The console went away: nothing left to restore.
            }
        }
    }
    $text = (@($lines) | ForEach-Object { [string]$_ }) -join "`r`n"
    return [ordered]@{
        command = $command
        text = $text
        exit_code = $exitCode
    }
}

function Assert-NativeSuccess {
    param($Run)
    if ($Run['exit_code'] -ne 0) {
        $message = '{0} exited with code {1}' -f $Run['command'], $Run['exit_code']
        $hresult = Get-HResultFromText $Run['text']
        throw (New-AgentException -Message $message -Command $Run['command'] -ExitCode $Run['exit_code'] -Output (Limit-Text $Run['text']) -HResult $hresult)
    }
}

function Invoke-DiskShadow {
    # diskshadow /s with a temporary script (ASCII: it only holds diskshadow keywords).
    param($ScriptLines, $CodePage)
    $exe = Join-Path $SystemDir 'diskshadow.exe'
    if (-not (Test-Path -LiteralPath $exe)) {
        throw (New-AgentException -Message 'diskshadow.exe is not on this host (it ships with Windows Server only)' -Command 'diskshadow')
    }
    $name = 'shadowsnap-' + [guid]::NewGuid().ToString('N') + '.dsh'
    $scriptPath = Join-Path ([System.IO.Path]::GetTempPath()) $name
    $content = (@($ScriptLines) -join "`r`n") + "`r`n"
    [System.IO.File]::WriteAllText($scriptPath, $content, [System.Text.Encoding]::ASCII)
    try {
        return (Invoke-Native -FilePath $exe -ArgumentList @('/s', $scriptPath) -CodePage $CodePage)
    }
    finally {
        Remove-Item -LiteralPath $scriptPath -Force -ErrorAction SilentlyContinue
    }
}


function New-ErrorAnswer {
    param($Op, $ErrorRecord, $Milliseconds)
    $exception = $ErrorRecord.Exception
    $command = $null
    $exitCode = $null
    $output = $null
    $hresult = $null
    if ($exception.Data.Contains('shadowsnap_command')) {
        $command = $exception.Data['shadowsnap_command']
        $exitCode = $exception.Data['shadowsnap_exit_code']
        $output = $exception.Data['shadowsnap_output']
        $hresult = $exception.Data['shadowsnap_hresult']
    }
    if (-not $hresult) {
        $hresult = Get-HResultFromException $exception
    }
    return [ordered]@{
        protocol = $Shadowsnap.Protocol
        op = $Op
        ok = $false
        error = [ordered]@{
            message = [string]$exception.Message
            hresult = $hresult
            command = $command
            exit_code = $exitCode
            output = $output
            type = $exception.GetType().FullName
            where = [string]$ErrorRecord.ScriptStackTrace
        }
        elapsed_ms = [int]$Milliseconds
    }
}

function ConvertTo-AnswerJson {
    param($Answer)
    return (ConvertTo-Json -InputObject $Answer -Depth $JsonDepth -Compress)
}

function Invoke-Request {
    # One op, answered as a JSON document (ok or error) by the function the controller's table names for it; the
    # document and whether it says ok.
    param($Op, $OpArgs)
    $clock = [System.Diagnostics.Stopwatch]::StartNew()
    try {
        if (($Shadowsnap.ReadOps -notcontains $Op) -and ($Shadowsnap.SessionOps -notcontains $Op)) {
            $known = ($Shadowsnap.ReadOps + $Shadowsnap.SessionOps) -join ', '
            throw (New-AgentException -Message ("unknown op '{0}' (this agent answers: {1}, {2}, {3})" -f $Op, $known, $Shadowsnap.BatchOp, $Shadowsnap.SequenceOp))
        }
        $handler = $Shadowsnap.Handlers[$Op]
        $result = & $handler $OpArgs
        $answer = [ordered]@{
            protocol = $Shadowsnap.Protocol
            op = $Op
            ok = $true
            result = $result
            elapsed_ms = [int]$clock.ElapsedMilliseconds
        }
        return @{ ok = $true; json = (ConvertTo-AnswerJson $answer) }
    }
    catch {
        return @{ ok = $false; json = (ConvertTo-AnswerJson (New-ErrorAnswer -Op $Op -ErrorRecord $_ -Milliseconds $clock.ElapsedMilliseconds)) }
    }
}

function Join-Answers {
    # The answer of a batch or a sequence around the answers of its ops, each serialized on its own (so that nesting
    # never reaches the ConvertTo-Json depth limit).
    param($Op, $Parts, $Milliseconds)
    $answer = '{"protocol":' + $Shadowsnap.Protocol + ',"op":"' + $Op + '","ok":true,"result":{"answers":['
    return ($answer + ($Parts -join ',') + ']},"elapsed_ms":' + [int]$Milliseconds + '}')
}

function Get-Requests {
    # The requests of a batch or a sequence; none, or an op it may not hold, fails the whole request before any runs.
    param($OpArgs, $Kind, $Allowed, $Refusal)
    $requests = @(Get-Property $OpArgs 'requests' @())
    if ($requests.Count -eq 0) {
        throw (New-AgentException -Message ('a {0} needs at least one request in args.requests' -f $Kind))
    }
    foreach ($item in $requests) {
        $itemOp = [string](Get-Property $item 'op' '')
        if ($Allowed -notcontains $itemOp) {
            throw (New-AgentException -Message ($Refusal -f $itemOp, ($Allowed -join ', ')))
        }
    }
    return $requests
}

function Invoke-Batch {
    # Several read ops in one round trip; each answers, whatever the others did.
    param($OpArgs)
    $clock = [System.Diagnostics.Stopwatch]::StartNew()
    $requests = @(Get-Requests -OpArgs $OpArgs -Kind $Shadowsnap.BatchOp -Allowed $Shadowsnap.ReadOps -Refusal "op '{0}' cannot be batched: a batch holds read ops only ({1})")
    $parts = @()
    foreach ($item in $requests) {
        $parts += (Invoke-Request -Op ([string](Get-Property $item 'op')) -OpArgs (Get-Property $item 'args')).json
    }
    return (Join-Answers -Op $Shadowsnap.BatchOp -Parts $parts -Milliseconds $clock.ElapsedMilliseconds)
}

function Invoke-Sequence {
    # Reads and restore ops carried out in order; the first that fails ends the sequence (the ops after it do not
    # run). The answers are those of the ops that ran, assembled as a batch's are.
    param($OpArgs)
    $clock = [System.Diagnostics.Stopwatch]::StartNew()
    $requests = @(Get-Requests -OpArgs $OpArgs -Kind $Shadowsnap.SequenceOp -Allowed $Shadowsnap.SequenceOps -Refusal "op '{0}' cannot be in a sequence: it holds {1} only")
    $parts = @()
    foreach ($item in $requests) {
        $done = Invoke-Request -Op ([string](Get-Property $item 'op')) -OpArgs (Get-Property $item 'args')
        $parts += $done.json
        if (-not $done.ok) {
            break
        }
    }
    return (Join-Answers -Op $Shadowsnap.SequenceOp -Parts $parts -Milliseconds $clock.ElapsedMilliseconds)
}

function ConvertTo-AsciiJson {
    # Non-ASCII characters as \uXXXX escapes: the document is ASCII, whatever the console's encoding does to it.
    param($Json)
    $evaluator = { param($match) '\u{0:x4}' -f [int][char]$match.Value }
    return [regex]::Replace($Json, '[^\x00-\x7F]', [System.Text.RegularExpressions.MatchEvaluator]$evaluator)
}

$answerJson = $null
$requestOp = $null
try {
    $request = ConvertFrom-Json -InputObject ([string]$RequestJson)
    $requestOp = Get-Property $request 'op'
    $version = Get-Property $request 'protocol'
    if ($version -ne $Shadowsnap.Protocol) {
        throw (New-AgentException -Message ("request protocol '{0}' is not supported by this agent (protocol {1})" -f $version, $Shadowsnap.Protocol))
    }
    if ($requestOp -eq $Shadowsnap.BatchOp) {
        $answerJson = Invoke-Batch -OpArgs (Get-Property $request 'args')
    }
    elseif ($requestOp -eq $Shadowsnap.SequenceOp) {
        $answerJson = Invoke-Sequence -OpArgs (Get-Property $request 'args')
    }
    else {
        $answerJson = (Invoke-Request -Op $requestOp -OpArgs (Get-Property $request 'args')).json
    }
}
catch {
    $answerJson = ConvertTo-AnswerJson (New-ErrorAnswer -Op $requestOp -ErrorRecord $_ -Milliseconds 0)
}

