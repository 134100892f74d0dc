# The session ops of the shadowsnap.ec2 agent (docs/vss-session.md), and the read op sessions. A part of the agent
# script: agent_transport.py joins it into the frame (shadowsnap_agent.ps1), whose helpers it uses.
#
# The controller generates every file and decides everything: the session state, what created.txt records, whether
# the session directory is safe, which leftover runs are cleaned. These functions write the files, run diskshadow
# detached as SYSTEM through a scheduled task, carry out the cleanup the controller chose, and answer the raw facts of
# a run (its directory, its task, the texts of its files, diskshadow's log) and of the session tree (owners, reparse
# points, explicit access entries). Every wait is bounded.

$MaxWaitSeconds = 900
$DefaultTimeLimitSeconds = 3600
$LogLimit = 524288
$FileReadDefaultLimit = 16777216
$FileReadMaxLimit = 134217728
$ServiceTimeoutDefault = 60
$ServiceTimeoutMax = 300
$ShadowsnapRoot = Join-Path $env:ProgramData $Shadowsnap.AgentFolder
$RunRoot = Join-Path $ShadowsnapRoot $Shadowsnap.RunsFolder
# The files of a run directory the agent reads besides those it writes for session_start.
$RunFiles = @($Shadowsnap.CreatedFile, $Shadowsnap.ExitFile, $Shadowsnap.ReleaseFile, $Shadowsnap.LogFile)

function Get-IntArgument {
    # A whole-number argument, clamped to [Minimum, Maximum]; Default when absent.
    param($OpArgs, $Name, $Default, $Minimum, $Maximum)
    $value = Get-Property $OpArgs $Name $null
    if ($null -eq $value) {
        return $Default
    }
    $number = 0
    if (-not [int]::TryParse([string]$value, [ref]$number)) {
        throw (New-AgentException -Message ("argument '{0}' must be a whole number, not '{1}'" -f $Name, $value))
    }
    if ($number -lt $Minimum) {
        return $Minimum
    }
    if ($number -gt $Maximum) {
        return $Maximum
    }
    return $number
}

function Get-ListArgument {
    # A list argument (one value counts as a list of one), each item one of Allowed; empty when absent.
    param($OpArgs, $Name, $Allowed)
    $items = @(@(Get-Property $OpArgs $Name @()) | Where-Object { $null -ne $_ } | ForEach-Object { [string]$_ })
    foreach ($item in $items) {
        if ($Allowed -notcontains $item) {
            throw (New-AgentException -Message ("argument '{0}' may hold {1}, not '{2}'" -f $Name, ($Allowed -join ', '), $item))
        }
    }
    return $items
}

function Get-RunId {
    param($OpArgs)
    $runId = [string](Get-Property $OpArgs 'run_id' '')
    if ($runId -notmatch $Shadowsnap.RunIdPattern) {
        throw (New-AgentException -Message ("run id '{0}' is not valid (letters, digits, '.', '_' or '-', at most 64)" -f $runId))
    }
    return $runId
}

function Get-RunDirectory {
    param($RunId)
    return (Join-Path $RunRoot $RunId)
}

function Get-TaskName {
    param($RunId)
    return ($Shadowsnap.TaskPrefix + $RunId)
}

function Assert-Guid {
    # A GUID as the controller sends it ('{guid}'), in lower case; anything else is refused, so that no text reaches
    # a diskshadow script unchecked.
    param($Value)
    $text = [string]$Value
    if ($text -notmatch $Shadowsnap.GuidPattern) {
        throw (New-AgentException -Message ("'{0}' is not a GUID" -f $text))
    }
    return $text.ToLowerInvariant()
}

function ConvertTo-UtcText {
    # A moment as ISO 8601 text in UTC with milliseconds: every timestamp the controller reads from the host.
    param([datetime]$Moment)
    return $Moment.ToUniversalTime().ToString("yyyy-MM-dd'T'HH:mm:ss.fff'Z'", [System.Globalization.CultureInfo]::InvariantCulture)
}

function Read-SharedBytes {
    # The bytes of a file another process may still be writing (diskshadow's log).
    param($Path)
    $share = [System.IO.FileShare]::ReadWrite -bor [System.IO.FileShare]::Delete
    $stream = New-Object -TypeName System.IO.FileStream -ArgumentList @($Path, [System.IO.FileMode]::Open, [System.IO.FileAccess]::Read, $share)
    try {
        $buffer = New-Object -TypeName 'byte[]' -ArgumentList ([int]$stream.Length)
        $read = 0
        while ($read -lt $buffer.Length) {
            $count = $stream.Read($buffer, $read, $buffer.Length - $read)
            if ($count -le 0) {
                break
            }
            $read += $count
        }
        if ($read -lt $buffer.Length) {
            $trimmed = New-Object -TypeName 'byte[]' -ArgumentList $read
            [System.Array]::Copy($buffer, $trimmed, $read)
            $buffer = $trimmed
        }
        return , $buffer
    }
    finally {
        $stream.Dispose()
    }
}


function Read-RunFile {
    # A small ASCII file of a run directory (written by the batch files or the agent), as it is; null when absent.
    param($Directory, $Name)
    $path = Join-Path $Directory $Name
    if (-not (Test-Path -LiteralPath $path -PathType Leaf)) {
        return $null
    }
    return [System.Text.Encoding]::ASCII.GetString((Read-SharedBytes $path))
}

function Write-AtomicText {
    # Write next to the target, then rename: a batch file polling for the target never reads half a file.
    param($Path, $Text)
    $temporary = $Path + '.tmp'
    [System.IO.File]::WriteAllText($temporary, $Text, [System.Text.Encoding]::ASCII)
    Move-Item -LiteralPath $temporary -Destination $Path -Force
}

function Read-SessionLog {
    # diskshadow's log in the console's OEM code page; the last $LogLimit characters when it is longer.
    param($Directory)
    $path = Join-Path $Directory $Shadowsnap.LogFile
    $log = @{ text = $null; truncated = $false }
    if (-not (Test-Path -LiteralPath $path -PathType Leaf)) {
        return $log
    }
    $encoding = [System.Text.Encoding]::GetEncoding([int](Get-OemCodePage))
    $text = $encoding.GetString((Read-SharedBytes $path))
    if ($text.Length -gt $LogLimit) {
        $log['text'] = $text.Substring($text.Length - $LogLimit)
        $log['truncated'] = $true
    }
    else {
        $log['text'] = $text
    }
    return $log
}

# ---- Tasks ------------------------------------------------------------------------------------------------------

function Get-SessionTask {
    param($RunId)
    try {
        return (Get-ScheduledTask -TaskPath $Shadowsnap.TaskPath -TaskName (Get-TaskName $RunId) -ErrorAction Stop)
    }
    catch {
        return $null
    }
}

function Get-TaskResult {
    # A task's LastTaskResult; null when Task Scheduler does not tell.
    param($Task)
    try {
        $value = Get-Property ($Task | Get-ScheduledTaskInfo -ErrorAction Stop) 'LastTaskResult' $null
    }
    catch {
        $value = $null
    }
    if ($null -eq $value) {
        return $null
    }
    return [int64]$value
}

function Test-TaskActive {
    # Running or queued, or started and not run yet, by the controller's rule ($Shadowsnap.ActiveTaskStates and
    # TaskNeverRan): for this agent's waits and for its one-session-at-a-time refusal, nothing else.
    param($Task)
    if ($null -eq $Task) {
        return $false
    }
    if ($Shadowsnap.ActiveTaskStates -contains [string]$Task.State) {
        return $true
    }
    return ((Get-TaskResult $Task) -eq $Shadowsnap.TaskNeverRan)
}

function Get-TaskFacts {
    # What Task Scheduler says of a run's task: state, last result, execution time limit (XML duration); null when the
    # task is not registered.
    param($Task)
    if ($null -eq $Task) {
        return $null
    }
    return [ordered]@{
        name = [string]$Task.TaskName
        state = [string]$Task.State
        last_result = (Get-TaskResult $Task)
        time_limit = [string](Get-Property (Get-Property $Task 'Settings' $null) 'ExecutionTimeLimit' '')
    }
}

function Get-ActiveSessionTasks {
    $tasks = @()
    try {
        $tasks = @(Get-ScheduledTask -TaskPath $Shadowsnap.TaskPath -ErrorAction Stop)
    }
    catch {
        $tasks = @()
    }
    foreach ($task in $tasks) {
        if (Test-TaskActive $task) {
            $task
        }
    }
}

function Stop-SessionTask {
    # Ends the run's task and the diskshadow it started (the scheduler ends cmd.exe; its child may outlive it).
    param($RunId)
    try {
        $null = Stop-ScheduledTask -TaskPath $Shadowsnap.TaskPath -TaskName (Get-TaskName $RunId) -ErrorAction Stop
    }
    catch {
        # Not running, or gone.
    }
    $script = Join-Path (Get-RunDirectory $RunId) $Shadowsnap.ScriptFile
    foreach ($process in @(Get-CimInstance -ClassName Win32_Process -Filter "Name = 'diskshadow.exe'")) {
        $commandLine = [string](Get-Property $process 'CommandLine' '')
        if ($commandLine.IndexOf($script, [System.StringComparison]::OrdinalIgnoreCase) -ge 0) {
            Stop-Process -Id ([int]$process.ProcessId) -Force -ErrorAction SilentlyContinue
        }
    }
}

function Unregister-SessionTask {
    param($RunId)
    try {
        $null = Unregister-ScheduledTask -TaskPath $Shadowsnap.TaskPath -TaskName (Get-TaskName $RunId) -Confirm:$false -ErrorAction Stop
    }
    catch {
        # Already gone.
    }
}

function Register-SessionTask {
    # The run's scheduled task: run.cmd as SYSTEM, highest run level, with an execution time limit.
    param($RunId, $Directory, $TimeLimitSeconds)
    # NT AUTHORITY\SYSTEM by its SID: the account name is translated on some display languages.
    $system = (New-Object -TypeName System.Security.Principal.SecurityIdentifier -ArgumentList $Shadowsnap.SystemSid).Translate([System.Security.Principal.NTAccount]).Value
    $command = Join-Path $env:SystemRoot 'System32\cmd.exe'
    $action = New-ScheduledTaskAction -Execute $command -Argument ('/d /c "' + (Join-Path $Directory $Shadowsnap.RunFile) + '"') -WorkingDirectory $Directory
    $principal = New-ScheduledTaskPrincipal -UserId $system -LogonType ServiceAccount -RunLevel Highest
    $settings = New-ScheduledTaskSettingsSet -ExecutionTimeLimit (New-TimeSpan -Seconds $TimeLimitSeconds) -MultipleInstances IgnoreNew -AllowStartIfOnBatteries -DontStopIfGoingOnBatteries
    $null = Register-ScheduledTask -TaskPath $Shadowsnap.TaskPath -TaskName (Get-TaskName $RunId) -Action $action -Principal $principal -Settings $settings -Description ('shadowsnap.ec2 VSS session ' + $RunId) -Force
    $null = Start-ScheduledTask -TaskPath $Shadowsnap.TaskPath -TaskName (Get-TaskName $RunId)
}

# ---- Run facts and the session tree -----------------------------------------------------------------------------

function Get-RunFacts {
    # The raw facts of a run (docs/vss-session.md "Run facts"): whether its directory exists and when it was created,
    # its task, the texts of created.txt, exit.txt and release.txt, and diskshadow's log when asked. The task is read
    # before the files, so that a run ending in between never looks like one stopped without an exit code.
    param($RunId, [switch]$WithLog)
    $directory = Get-RunDirectory $RunId
    $facts = [ordered]@{
        run_id = $RunId
        run_dir = $directory
        exists = $false
        created = $null
        task = $null
        files = [ordered]@{}
        log = $null
        log_truncated = $false
    }
    if (-not (Test-Path -LiteralPath $directory -PathType Container)) {
        return $facts
    }
    $facts['exists'] = $true
    $facts['created'] = ConvertTo-UtcText (Get-Item -LiteralPath $directory -Force).CreationTimeUtc
    $facts['task'] = Get-TaskFacts (Get-SessionTask $RunId)
    foreach ($name in @($Shadowsnap.CreatedFile, $Shadowsnap.ExitFile, $Shadowsnap.ReleaseFile)) {
        $facts['files'][$name] = Read-RunFile $directory $name
    }
    if ($WithLog) {
        $log = Read-SessionLog $directory
        $facts['log'] = $log['text']
        $facts['log_truncated'] = $log['truncated']
    }
    return $facts
}

function Wait-Run {
    # Polls a run until one of the files the controller waits for exists, its task no longer runs, its directory is
    # gone or the seconds are over; answers its facts with the log.
    param($RunId, $Seconds, $WaitFor)
    $directory = Get-RunDirectory $RunId
    $deadline = [DateTime]::UtcNow.AddSeconds($Seconds)
    while ([DateTime]::UtcNow -lt $deadline) {
        if (-not (Test-Path -LiteralPath $directory -PathType Container)) {
            break
        }
        if (-not (Test-TaskActive (Get-SessionTask $RunId))) {
            break
        }
        if (@($WaitFor | Where-Object { Test-Path -LiteralPath (Join-Path $directory $_) -PathType Leaf }).Count -gt 0) {
            break
        }
        Start-Sleep -Milliseconds 100
    }
    return (Get-RunFacts $RunId -WithLog)
}

function Get-AccountName {
    # The account name of a SID; null when Windows cannot translate it (a deleted account, a domain out of reach).
    param($Sid)
    try {
        return $Sid.Translate([System.Security.Principal.NTAccount]).Value
    }
    catch {
        return $null
    }
}

function Get-FolderFacts {
    # Who owns a folder of the session tree and who may change it, and whether it leads elsewhere: its owner, its
    # attributes (ReparsePoint), link type and target, whether it inherits its parent's entries, its explicit access
    # entries; error when its security cannot be read.
    param($Path)
    $facts = [ordered]@{
        path = $Path
        exists = $false
        created = $null
        owner = $null
        owner_name = $null
        attributes = $null
        link_type = $null
        link_target = $null
        inherits = $null
        explicit_access = @()
        error = $null
    }
    if (-not (Test-Path -LiteralPath $Path -PathType Container)) {
        return $facts
    }
    $item = Get-Item -LiteralPath $Path -Force
    $facts['exists'] = $true
    $facts['created'] = ConvertTo-UtcText $item.CreationTimeUtc
    $facts['attributes'] = [string]$item.Attributes
    $facts['link_type'] = Get-Property $item 'LinkType' $null
    $facts['link_target'] = @(Get-Property $item 'Target' @()) | Select-Object -First 1
    try {
        $acl = [System.IO.Directory]::GetAccessControl($Path)
    }
    catch {
        $facts['error'] = [string]$_.Exception.Message
        return $facts
    }
    $sidType = [System.Security.Principal.SecurityIdentifier]
    $owner = $acl.GetOwner($sidType)
    $facts['owner'] = Get-Property $owner 'Value' $null
    $facts['owner_name'] = Get-AccountName $owner
    $facts['inherits'] = -not $acl.AreAccessRulesProtected
    $facts['explicit_access'] = @(foreach ($rule in @($acl.GetAccessRules($true, $false, $sidType))) {
            [ordered]@{
                identity = [string]$rule.IdentityReference.Value
                name = Get-AccountName $rule.IdentityReference
                rights = [string]$rule.FileSystemRights
                type = [string]$rule.AccessControlType
                inheritance = [string]$rule.InheritanceFlags
                propagation = [string]$rule.PropagationFlags
            }
        })
    return $facts
}

function Get-SessionsResult {
    # The read op sessions: the facts of the session tree (the root, its runs folder and every folder in it) and of
    # every run, read before a session starts: the controller refuses an unsafe tree and picks the leftover runs.
    $folders = @((Get-FolderFacts $ShadowsnapRoot), (Get-FolderFacts $RunRoot))
    $runs = @()
    if (Test-Path -LiteralPath $RunRoot -PathType Container) {
        foreach ($child in @(Get-ChildItem -LiteralPath $RunRoot -Directory -Force)) {
            $folders += Get-FolderFacts $child.FullName
            $runs += Get-RunFacts $child.Name
        }
    }
    return [ordered]@{
        root = $ShadowsnapRoot
        run_root = $RunRoot
        read_at = (ConvertTo-UtcText ([DateTime]::UtcNow))
        folders = $folders
        runs = $runs
    }
}

function New-SessionFolder {
    # A folder the controller found missing. One that exists now was made by someone else after the controller looked.
    param($Path)
    if (Test-Path -LiteralPath $Path) {
        throw (New-AgentException -Message ("{0} exists now, but did not when the controller checked the session directory: someone else created it; the session was not started" -f $Path))
    }
    $null = New-Item -ItemType Directory -Path $Path
}

function Protect-SessionRoot {
    # %ProgramData% lets every user create folders: the agent's folder gets an ACL of its own (SYSTEM and
    # Administrators only, owner Administrators, not inherited), since SYSTEM runs what is written there. Folders
    # below it keep their owners and explicit entries: the controller checks those before every session.
    $security = New-Object -TypeName System.Security.AccessControl.DirectorySecurity
    $security.SetAccessRuleProtection($true, $false)
    $inherit = [System.Security.AccessControl.InheritanceFlags]::ContainerInherit -bor [System.Security.AccessControl.InheritanceFlags]::ObjectInherit
    foreach ($sid in @($Shadowsnap.SystemSid, $Shadowsnap.AdministratorsSid)) {
        $identity = New-Object -TypeName System.Security.Principal.SecurityIdentifier -ArgumentList $sid
        $rule = New-Object -TypeName System.Security.AccessControl.FileSystemAccessRule -ArgumentList @(
            $identity, [System.Security.AccessControl.FileSystemRights]::FullControl, $inherit,
            [System.Security.AccessControl.PropagationFlags]::None, [System.Security.AccessControl.AccessControlType]::Allow
        )
        $security.AddAccessRule($rule)
    }
    $security.SetOwner((New-Object -TypeName System.Security.Principal.SecurityIdentifier -ArgumentList $Shadowsnap.AdministratorsSid))
    try {
        [System.IO.Directory]::SetAccessControl($ShadowsnapRoot, $security)
    }
    catch {
        throw (New-AgentException -Message ("cannot restrict {0} to SYSTEM and Administrators: {1}" -f $ShadowsnapRoot, $_.Exception.Message))
    }
}

function Initialize-SessionFolders {
    # The root and its runs folder: created where the controller found them missing (refused where they appeared or
    # vanished since), the root protected before anything is created in it.
    param($CreateFolders)
    foreach ($path in @($ShadowsnapRoot, $RunRoot)) {
        if ($CreateFolders -contains $path) {
            New-SessionFolder $path
        }
        elseif (-not (Test-Path -LiteralPath $path -PathType Container)) {
            throw (New-AgentException -Message ("{0} is gone since the controller checked the session directory; the session was not started" -f $path))
        }
        if ($path -eq $ShadowsnapRoot) {
            Protect-SessionRoot
        }
    }
}

# ---- Shadow copies ----------------------------------------------------------------------------------------------

function Get-ShadowCopyIds {
    # Every shadow copy on the host, ID and SetID as Win32_ShadowCopy gives them (the controller picks a set's).
    foreach ($shadow in @(Get-CimInstance -ClassName Win32_ShadowCopy)) {
        [ordered]@{
            ID = [string]$shadow.ID
            SetID = [string]$shadow.SetID
        }
    }
}

function Get-SetShadowIds {
    # Ids of the shadow copies of a set (or of the listed ids) that exist now, '{guid}' in lower case.
    param($SetId, $ShadowIds)
    $wanted = @(@($ShadowIds) | Where-Object { $null -ne $_ } | ForEach-Object { Assert-Guid $_ })
    $set = $null
    if ($SetId) {
        $set = Assert-Guid $SetId
    }
    foreach ($shadow in @(Get-CimInstance -ClassName Win32_ShadowCopy)) {
        $id = ([string]$shadow.ID).ToLowerInvariant()
        if ((($null -ne $set) -and (([string]$shadow.SetID).ToLowerInvariant() -eq $set)) -or ($wanted -contains $id)) {
            $id
        }
    }
}

function Remove-Shadows {
    # Deletes a set's shadow copies (or the listed ones) with diskshadow; returns the ids that were deleted.
    param($SetId, $ShadowIds)
    $before = @(Get-SetShadowIds -SetId $SetId -ShadowIds $ShadowIds)
    if ($before.Count -eq 0) {
        return
    }
    $lines = @()
    if ($SetId) {
        $lines += 'delete shadows set ' + (Assert-Guid $SetId)
    }
    foreach ($id in @($ShadowIds)) {
        if ($null -ne $id) {
            $lines += 'delete shadows id ' + (Assert-Guid $id)
        }
    }
    $run = Invoke-DiskShadow -ScriptLines $lines -CodePage (Get-OemCodePage)
    $after = @(Get-SetShadowIds -SetId $SetId -ShadowIds $ShadowIds)
    if ($after.Count -gt 0) {
        $message = 'diskshadow did not delete the shadow copies {0}' -f ($after -join ', ')
        throw (New-AgentException -Message $message -Command $run['command'] -ExitCode $run['exit_code'] -Output (Limit-Text $run['text']) -HResult (Get-HResultFromText $run['text']))
    }
    foreach ($id in $before) {
        $id
    }
}

function Get-RecordedSetId {
    # The set a run recorded: the value of created.txt's $Shadowsnap.ShadowSetVariable line, the one value of the
    # record the agent reads itself, to delete that set at the release; null when there is none. The controller
    # parses the record.
    param($Directory)
    $prefix = $Shadowsnap.ShadowSetVariable + '='
    foreach ($line in @(([string](Read-RunFile $Directory $Shadowsnap.CreatedFile)) -split "`r?`n")) {
        $text = $line.Trim()
        if ($text.StartsWith($prefix)) {
            $value = $text.Substring($prefix.Length).Trim()
            return (Assert-Guid $value)
        }
    }
    return $null
}

function Invoke-RunCleanup {
    # The leftover runs the controller chose, each {run_id, shadow_set_id}: stop its task (and its diskshadow), delete
    # that shadow set when one is given, unregister the task, remove the run directory. One entry per run; a failure
    # is kept in its entry and does not stop the others.
    param($Runs)
    foreach ($run in @($Runs)) {
        $entry = [ordered]@{
            run_id = [string](Get-Property $run 'run_id' '')
            shadow_set_id = (Get-Property $run 'shadow_set_id' $null)
            deleted_shadow_ids = @()
            error = $null
        }
        try {
            $runId = Get-RunId $run
            Stop-SessionTask $runId
            if ($entry['shadow_set_id']) {
                $entry['deleted_shadow_ids'] = @(Remove-Shadows -SetId $entry['shadow_set_id'])
            }
            Unregister-SessionTask $runId
            $directory = Get-RunDirectory $runId
            if (Test-Path -LiteralPath $directory) {
                Remove-Item -LiteralPath $directory -Recurse -Force
            }
        }
        catch {
            $entry['error'] = [string]$_.Exception.Message
        }
        $entry
    }
}

# ---- The ops ----------------------------------------------------------------------------------------------------

function Start-Session {
    param($OpArgs)
    $runId = Get-RunId $OpArgs
    $directory = Get-RunDirectory $runId
    $waitSeconds = Get-IntArgument $OpArgs 'wait_seconds' 0 0 $MaxWaitSeconds
    $timeLimit = Get-IntArgument $OpArgs 'time_limit_seconds' $DefaultTimeLimitSeconds 60 86400
    $waitFor = @(Get-ListArgument $OpArgs 'wait_for' $RunFiles)
    $createFolders = @(Get-ListArgument $OpArgs 'create_folders' @($ShadowsnapRoot, $RunRoot))
    $expected = [string](Get-Property $OpArgs 'run_dir' '')
    if ($expected -and ($expected.TrimEnd('\') -ne $directory.TrimEnd('\'))) {
        throw (New-AgentException -Message ("the session files were generated for {0}, but this host's run directory is {1} (ProgramData is {2})" -f $expected, $directory, $env:ProgramData))
    }
    $files = Get-Property $OpArgs 'files' $null
    if ($null -eq $files) {
        throw (New-AgentException -Message 'session_start needs files (name -> text)')
    }
    $names = @($files.PSObject.Properties | ForEach-Object { $_.Name })
    foreach ($required in $Shadowsnap.RequiredSessionFiles) {
        if ($names -notcontains $required) {
            throw (New-AgentException -Message ("session_start needs the file {0}" -f $required))
        }
    }
    foreach ($name in $names) {
        if ($Shadowsnap.SessionFiles -notcontains $name) {
            throw (New-AgentException -Message ("'{0}' is not a session file ({1})" -f $name, ($Shadowsnap.SessionFiles -join ', ')))
        }
        if ([string](Get-Property $files $name '') -match '[^\x00-\x7F]') {
            throw (New-AgentException -Message ("session file {0} is not ASCII" -f $name))
        }
    }
    $cleaned = @(Invoke-RunCleanup (Get-Property $OpArgs 'cleanup' @()))
    # The refusals come before anything is created. A run whose diskshadow has exited (exit.txt) creates nothing any
    # more, even while its task winds down.
    $others = @(Get-ActiveSessionTasks | Where-Object { $_.TaskName -ne (Get-TaskName $runId) } | Where-Object {
            -not (Test-Path -LiteralPath (Join-Path (Get-RunDirectory $_.TaskName.Substring($Shadowsnap.TaskPrefix.Length)) $Shadowsnap.ExitFile))
        } | ForEach-Object { $_.TaskName })
    if ($others.Count -gt 0) {
        $message = 'another shadowsnap session is running on this host ({0}); VSS creates one shadow copy set at a time' -f ($others -join ', ')
        throw (New-AgentException -Message $message -HResult $Shadowsnap.InProgressHResult)
    }
    if (Test-Path -LiteralPath $directory) {
        throw (New-AgentException -Message ("run {0} already exists ({1}); a run id is used once" -f $runId, $directory))
    }
    Initialize-SessionFolders $createFolders
    $null = New-Item -ItemType Directory -Path $directory
    foreach ($name in $names) {
        [System.IO.File]::WriteAllText((Join-Path $directory $name), [string](Get-Property $files $name), [System.Text.Encoding]::ASCII)
    }
    try {
        Register-SessionTask -RunId $runId -Directory $directory -TimeLimitSeconds $timeLimit
    }
    catch {
        Unregister-SessionTask $runId
        Remove-Item -LiteralPath $directory -Recurse -Force -ErrorAction SilentlyContinue
        throw
    }
    $answer = Wait-Run -RunId $runId -Seconds $waitSeconds -WaitFor $waitFor
    $answer['cleaned'] = $cleaned
    return $answer
}

function Invoke-SessionStatus {
    param($OpArgs)
    $runId = Get-RunId $OpArgs
    $waitSeconds = Get-IntArgument $OpArgs 'wait_seconds' 0 0 $MaxWaitSeconds
    return (Wait-Run -RunId $runId -Seconds $waitSeconds -WaitFor @(Get-ListArgument $OpArgs 'wait_for' $RunFiles))
}

function Invoke-SessionRelease {
    # Writes the decision unless one was written before (the first decision stands), waits for diskshadow to end,
    # stops the task when the decision in effect is the abort and diskshadow still runs, lists the shadow copies before
    # any deletion, deletes the recorded set when asked once diskshadow no longer runs, unregisters the task once it
    # has ended; answers the run's facts with what it found and did.
    param($OpArgs)
    $runId = Get-RunId $OpArgs
    $decision = [string](Get-Property $OpArgs 'decision' '')
    if ($Shadowsnap.ReleaseDecisions -cnotcontains $decision) {
        throw (New-AgentException -Message ("decision must be '{0}', not '{1}'" -f ($Shadowsnap.ReleaseDecisions -join "' or '"), $decision))
    }
    $waitSeconds = Get-IntArgument $OpArgs 'wait_seconds' 0 0 $MaxWaitSeconds
    $deleteShadows = [bool](Get-Property $OpArgs 'delete_shadows' $false)
    $directory = Get-RunDirectory $runId
    $releasePath = Join-Path $directory $Shadowsnap.ReleaseFile
    $releasedBefore = Test-Path -LiteralPath $releasePath
    $shadowCopies = @()
    $deleted = @()
    if (Test-Path -LiteralPath $directory -PathType Container) {
        if (-not $releasedBefore) {
            Write-AtomicText -Path $releasePath -Text ($decision + "`r`n")
        }
        $null = Wait-Run -RunId $runId -Seconds $waitSeconds -WaitFor @($Shadowsnap.ExitFile)
        $inEffect = ([string](Read-RunFile $directory $Shadowsnap.ReleaseFile)).Trim()
        if (($inEffect -ceq $Shadowsnap.AbortDecision) -and (Test-TaskActive (Get-SessionTask $runId))) {
            Stop-SessionTask $runId
        }
        $shadowCopies = @(Get-ShadowCopyIds)
        $setId = Get-RecordedSetId $directory
        $ended = -not (Test-TaskActive (Get-SessionTask $runId))
        if ($deleteShadows -and $ended -and $setId) {
            $deleted = @(Remove-Shadows -SetId $setId)
        }
        if ($ended) {
            Unregister-SessionTask $runId
        }
    }
    $answer = Get-RunFacts $runId -WithLog
    $answer['released_before'] = $releasedBefore
    $answer['shadow_copies'] = $shadowCopies
    $answer['deleted_shadow_ids'] = $deleted
    return $answer
}

function Invoke-ShadowDelete {
    param($OpArgs)
    $setId = Get-Property $OpArgs 'shadow_set_id' $null
    $ids = @(Get-Property $OpArgs 'shadow_ids' @())
    if ((-not $setId) -and ($ids.Count -eq 0)) {
        throw (New-AgentException -Message 'shadow_delete needs shadow_set_id or shadow_ids')
    }
    return [ordered]@{
        deleted_shadow_ids = @(Remove-Shadows -SetId $setId -ShadowIds $ids)
    }
}

function Invoke-SessionCleanup {
    # The leftover runs the controller chose (runs: run_id and shadow_set_id each), cleaned as session_start does.
    param($OpArgs)
    $runs = Get-Property $OpArgs 'runs' $null
    if ($null -eq $runs) {
        throw (New-AgentException -Message 'session_cleanup needs runs (run_id and shadow_set_id of each)')
    }
    return [ordered]@{
        cleaned = @(Invoke-RunCleanup $runs)
    }
}

function Restart-ServiceBounded {
    # Stop (with the services that depend on it), start, wait until Running; every wait bounded. Restart-Service
    # itself waits without a limit.
    param($Name, $TimeoutSeconds)
    if ($Name -notmatch '^[A-Za-z0-9_.$-][A-Za-z0-9 _.$-]{0,255}$') {
        throw (New-AgentException -Message ("'{0}' is not a service name" -f $Name))
    }
    $service = Get-Service -Name $Name -ErrorAction SilentlyContinue
    if ($null -eq $service) {
        throw (New-AgentException -Message ("there is no service '{0}' on this host" -f $Name))
    }
    $clock = [System.Diagnostics.Stopwatch]::StartNew()
    $timeout = New-TimeSpan -Seconds $TimeoutSeconds
    $previous = [string]$service.Status
    $dependents = @($service.DependentServices | Where-Object { [string]$_.Status -eq 'Running' })
    try {
        if ($previous -ne 'Stopped') {
            if ($previous -ne 'StopPending') {
                # ServiceController.Stop stops the running dependent services first.
                $service.Stop()
            }
            $service.WaitForStatus('Stopped', $timeout)
        }
        $service.Start()
        $service.WaitForStatus('Running', $timeout)
        foreach ($dependent in $dependents) {
            $dependent.Refresh()
            if ([string]$dependent.Status -ne 'Running') {
                if ([string]$dependent.Status -ne 'StartPending') {
                    $dependent.Start()
                }
                $dependent.WaitForStatus('Running', $timeout)
            }
        }
    }
    catch {
        $service.Refresh()
        $message = "service '{0}' did not restart within {1} s (status now {2}): {3}" -f $Name, $TimeoutSeconds, [string]$service.Status, $_.Exception.Message
        throw (New-AgentException -Message $message)
    }
    $service.Refresh()
    return [ordered]@{
        name = [string]$service.Name
        display_name = [string]$service.DisplayName
        previous_status = $previous
        status = [string]$service.Status
        restarted_dependents = @($dependents | ForEach-Object { [string]$_.Name })
        elapsed_ms = [int]$clock.ElapsedMilliseconds
    }
}

function Invoke-ServiceRestart {
    param($OpArgs)
    $names = @()
    $single = Get-Property $OpArgs 'name' $null
    if ($single) {
        $names += [string]$single
    }
    foreach ($item in @(Get-Property $OpArgs 'names' @())) {
        if (($null -ne $item) -and ($names -notcontains [string]$item)) {
            $names += [string]$item
        }
    }
    if ($names.Count -eq 0) {
        throw (New-AgentException -Message 'service_restart needs name (or names)')
    }
    $timeoutSeconds = Get-IntArgument $OpArgs 'timeout_seconds' $ServiceTimeoutDefault 1 $ServiceTimeoutMax
    $services = @()
    foreach ($name in $names) {
        $services += Restart-ServiceBounded -Name $name -TimeoutSeconds $timeoutSeconds
    }
    return [ordered]@{
        services = $services
    }
}

function Invoke-FileRead {
    # A file's bytes as base64, with its size and SHA-256 (the controller checks both); bounded by max_bytes.
    param($OpArgs)
    $path = [string](Get-Property $OpArgs 'path' '')
    if (-not $path) {
        throw (New-AgentException -Message 'file_read needs path')
    }
    $limit = Get-IntArgument $OpArgs 'max_bytes' $FileReadDefaultLimit 1 $FileReadMaxLimit
    if (-not (Test-Path -LiteralPath $path -PathType Leaf)) {
        throw (New-AgentException -Message ("there is no file {0}" -f $path))
    }
    $item = Get-Item -LiteralPath $path
    if ($item.Length -gt $limit) {
        throw (New-AgentException -Message ("{0} is {1} bytes, more than max_bytes ({2})" -f $item.FullName, $item.Length, $limit))
    }
    $bytes = Read-SharedBytes $item.FullName
    # The CryptoServiceProvider class also works when Windows enforces FIPS-compliant algorithms.
    $sha256 = New-Object -TypeName System.Security.Cryptography.SHA256CryptoServiceProvider
    try {
        $hash = -join @($sha256.ComputeHash($bytes) | ForEach-Object { $_.ToString('x2') })
    }
    finally {
        $sha256.Dispose()
    }
    return [ordered]@{
        path = [string]$item.FullName
        size = $bytes.Length
        sha256 = $hash
        content_base64 = [System.Convert]::ToBase64String($bytes)
    }
}

