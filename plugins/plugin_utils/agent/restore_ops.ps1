# The restore ops of the shadowsnap.ec2 agent (docs/restore.md "The Windows side"): disks online and offline, a
# shadow copy reverted, exposed or unexposed, services stopped and started. A part of the agent script: agent_transport.py joins
# it into the frame (shadowsnap_agent.ps1), whose helpers it uses, and after session_ops.ps1 (Get-IntArgument,
# Assert-Guid).
#
# The controller decides everything: which disks (by number, from its storage read), whether a disk that collides
# with another may be brought online (Windows re-signs it), which tool reverts a shadow copy, which services stop.
# These functions carry it out and answer what the host says afterwards.

$ServiceSetTimeoutDefault = 60
$ServiceSetTimeoutMax = 300
$ServiceStates = @('stopped', 'running')
$RevertTools = @('diskshadow', 'vssadmin')
$ServiceRecordRoot = Join-Path $ShadowsnapRoot 'restores'

function Get-DiskNumberArgument {
    param($Value)
    $number = 0
    if (($null -eq $Value) -or (-not [int]::TryParse([string]$Value, [ref]$number)) -or ($number -lt 0)) {
        throw (New-AgentException -Message ("'{0}' is not a disk number" -f $Value))
    }
    return $number
}

function Get-DataPartition {
    # The disk's data partition: its largest partition that is a basic data (GPT) or IFS (MBR) one.
    param($Number)
    $partitions = @(Get-Partition -DiskNumber $Number -ErrorAction SilentlyContinue | Where-Object { @('Basic', 'IFS') -contains [string]$_.Type })
    if ($partitions.Count -eq 0) {
        return $null
    }
    return ($partitions | Sort-Object -Property Size -Descending | Select-Object -First 1)
}

function Get-DiskState {
    param($Number)
    $disk = Get-Disk -Number $Number
    $partition = Get-DataPartition $Number
    $facts = [ordered]@{
        number = $Number
        is_offline = [bool]$disk.IsOffline
        is_read_only = [bool]$disk.IsReadOnly
        guid = [string]$disk.Guid
        signature = $disk.Signature
        partition_number = $null
        drive_letter = $null
        access_paths = @()
    }
    if ($null -ne $partition) {
        $facts['partition_number'] = [int]$partition.PartitionNumber
        $facts['drive_letter'] = ConvertTo-DriveLetter $partition.DriveLetter
        $facts['access_paths'] = @($partition.AccessPaths | Where-Object { $null -ne $_ } | ForEach-Object { [string]$_ })
    }
    return $facts
}

function Invoke-DiskOnline {
    # Each disk of args.disks ({number, read_only, drive_letter, access_paths}) online, read-write unless asked, with
    # the drive letter and the mount folders given. Windows re-signs a disk that collides with an online one: the
    # controller sends such a disk only when the user allowed it.
    param($OpArgs)
    $disks = @(Get-Property $OpArgs 'disks' @())
    if ($disks.Count -eq 0) {
        throw (New-AgentException -Message 'disk_online needs disks')
    }
    $answers = @()
    foreach ($item in $disks) {
        $number = Get-DiskNumberArgument (Get-Property $item 'number')
        Set-Disk -Number $number -IsOffline $false
        Set-Disk -Number $number -IsReadOnly ([bool](Get-Property $item 'read_only' $false))
        $partition = Get-DataPartition $number
        $letter = [string](Get-Property $item 'drive_letter' '')
        if (($null -ne $partition) -and $letter) {
            if ($letter -notmatch '^[D-Zd-z]$') {
                throw (New-AgentException -Message ("'{0}' is not a drive letter D..Z" -f $letter))
            }
            if ((ConvertTo-DriveLetter $partition.DriveLetter) -ne $letter.ToUpperInvariant()) {
                Set-Partition -DiskNumber $number -PartitionNumber $partition.PartitionNumber -NewDriveLetter $letter
            }
        }
        foreach ($path in @(Get-Property $item 'access_paths' @())) {
            if (($null -eq $partition) -or (-not $path)) {
                continue
            }
            $folder = ([string]$path).TrimEnd('\') + '\'
            $present = @($partition.AccessPaths | Where-Object { ([string]$_).TrimEnd('\') -eq $folder.TrimEnd('\') })
            if ($present.Count -eq 0) {
                $null = New-Item -ItemType Directory -Path $folder -Force
                Add-PartitionAccessPath -DiskNumber $number -PartitionNumber $partition.PartitionNumber -AccessPath $folder
            }
        }
        $answers += Get-DiskState $number
    }
    return [ordered]@{
        disks = $answers
    }
}

function Invoke-DiskOffline {
    # Each disk of args.numbers offline (before its EBS volume is detached).
    param($OpArgs)
    $numbers = @(Get-Property $OpArgs 'numbers' @())
    if ($numbers.Count -eq 0) {
        throw (New-AgentException -Message 'disk_offline needs numbers')
    }
    $answers = @()
    foreach ($value in $numbers) {
        $number = Get-DiskNumberArgument $value
        Set-Disk -Number $number -IsOffline $true
        $answers += Get-DiskState $number
    }
    return [ordered]@{
        disks = $answers
    }
}

function Invoke-ShadowRevert {
    # The volume back to the shadow copy, with the tool the controller chose for the shadow's context.
    param($OpArgs)
    $id = Assert-Guid (Get-Property $OpArgs 'shadow_id')
    $tool = [string](Get-Property $OpArgs 'tool' '')
    if ($RevertTools -notcontains $tool) {
        throw (New-AgentException -Message ("argument 'tool' may hold {0}, not '{1}'" -f ($RevertTools -join ', '), $tool))
    }
    if ($tool -eq 'diskshadow') {
        $run = Invoke-DiskShadow -ScriptLines @('revert ' + $id) -CodePage (Get-OemCodePage)
    }
    else {
        $exe = Join-Path $SystemDir 'vssadmin.exe'
        $run = Invoke-Native -FilePath $exe -ArgumentList @('revert', 'shadow', ('/shadow=' + $id), '/ForceDismount', '/Quiet') -CodePage (Get-OemCodePage)
    }
    Assert-NativeSuccess $run
    return [ordered]@{
        shadow_id = $id
        tool = $tool
        command = $run['command']
        output = Limit-Text $run['text']
    }
}

function Invoke-ShadowExpose {
    # The shadow copy exposed read-only at a drive letter or an empty folder (diskshadow expose).
    param($OpArgs)
    $id = Assert-Guid (Get-Property $OpArgs 'shadow_id')
    $path = [string](Get-Property $OpArgs 'path' '')
    if ($path -notmatch '^([D-Zd-z]:|[A-Za-z]:\\[^"*?<>|]+)$') {
        throw (New-AgentException -Message ("'{0}' is neither a drive letter (X:) nor a folder path" -f $path))
    }
    if ($path.Length -gt 2) {
        $null = New-Item -ItemType Directory -Path $path -Force
    }
    $run = Invoke-DiskShadow -ScriptLines @('expose ' + $id + ' "' + $path + '"') -CodePage (Get-OemCodePage)
    Assert-NativeSuccess $run
    return [ordered]@{
        shadow_id = $id
        path = $path
        output = Limit-Text $run['text']
    }
}

function Invoke-ShadowUnexpose {
    # The drive letter or folder an exposed shadow copy is at, given back (diskshadow unexpose); the shadow stays.
    param($OpArgs)
    $path = [string](Get-Property $OpArgs 'path' '')
    if ($path -notmatch '^([D-Zd-z]:|[A-Za-z]:\\[^"*?<>|]+)$') {
        throw (New-AgentException -Message ("'{0}' is neither a drive letter (X:) nor a folder path" -f $path))
    }
    $run = Invoke-DiskShadow -ScriptLines @('unexpose "' + $path + '"') -CodePage (Get-OemCodePage)
    Assert-NativeSuccess $run
    return [ordered]@{
        path = $path
        output = Limit-Text $run['text']
    }
}

function Get-ServiceRecordPath {
    # The file of the services a restore stopped (args.record names it), or null without a record.
    param($OpArgs)
    $record = [string](Get-Property $OpArgs 'record' '')
    if ($record -eq '') {
        return $null
    }
    if ($record -notmatch '^[A-Za-z0-9-]{1,64}$') {
        throw (New-AgentException -Message ("'{0}' is not a service record name" -f $record))
    }
    return (Join-Path $ServiceRecordRoot ($record + '.txt'))
}

function Read-ServiceRecord {
    param($Path)
    if (($null -eq $Path) -or (-not (Test-Path -LiteralPath $Path -PathType Leaf))) {
        return @()
    }
    return @([System.IO.File]::ReadAllLines($Path, [System.Text.Encoding]::ASCII) | Where-Object { $_ -ne '' })
}

function Invoke-ServiceSet {
    # Each service of args.names stopped (with the services that depend on it) or started, every wait bounded. With
    # args.record, a stop first adds the services it finds running to the record (written before any of them stops),
    # and a start also starts the recorded ones, then removes the record: a re-run after a controller died knows what
    # to start again although it finds the services stopped.
    param($OpArgs)
    $state = [string](Get-Property $OpArgs 'state' '')
    if ($ServiceStates -notcontains $state) {
        throw (New-AgentException -Message ("argument 'state' may hold {0}, not '{1}'" -f ($ServiceStates -join ', '), $state))
    }
    $names = @(@(Get-Property $OpArgs 'names' @()) | Where-Object { $null -ne $_ } | ForEach-Object { [string]$_ })
    $recordPath = Get-ServiceRecordPath $OpArgs
    $recorded = @(Read-ServiceRecord $recordPath)
    if ($state -eq 'running') {
        $names += @($recorded | Where-Object { $names -notcontains $_ })
    }
    if (($names.Count -eq 0) -and ($null -eq $recordPath)) {
        throw (New-AgentException -Message 'service_set needs names')
    }
    $timeoutSeconds = Get-IntArgument $OpArgs 'timeout_seconds' $ServiceSetTimeoutDefault 1 $ServiceSetTimeoutMax
    $timeout = New-TimeSpan -Seconds $timeoutSeconds
    $found = @()
    foreach ($name in $names) {
        if ($name -notmatch '^[A-Za-z0-9_.$-][A-Za-z0-9 _.$-]{0,255}$') {
            throw (New-AgentException -Message ("'{0}' is not a service name" -f $name))
        }
        $service = Get-Service -Name $name -ErrorAction SilentlyContinue
        if ($null -eq $service) {
            throw (New-AgentException -Message ("there is no service '{0}' on this host" -f $name))
        }
        $found += $service
    }
    if (($state -eq 'stopped') -and ($null -ne $recordPath)) {
        $running = @($found | Where-Object { ($_.Status -ne [System.ServiceProcess.ServiceControllerStatus]::Stopped) -and ($recorded -notcontains $_.Name) } | ForEach-Object { [string]$_.Name })
        if ($running.Count -gt 0) {
            $recorded += $running
            if (-not (Test-Path -LiteralPath $ShadowsnapRoot -PathType Container)) {
                $null = New-Item -ItemType Directory -Path $ShadowsnapRoot
            }
            Protect-SessionRoot
            if (-not (Test-Path -LiteralPath $ServiceRecordRoot -PathType Container)) {
                $null = New-Item -ItemType Directory -Path $ServiceRecordRoot
            }
            Write-AtomicText $recordPath (($recorded | ForEach-Object { $_ + "`r`n" }) -join '')
        }
    }
    $services = @()
    foreach ($service in $found) {
        $name = [string]$service.Name
        $previous = [string]$service.Status
        try {
            if ($state -eq 'stopped') {
                if ($service.Status -ne [System.ServiceProcess.ServiceControllerStatus]::Stopped) {
                    Stop-Service -InputObject $service -Force -NoWait
                    $service.WaitForStatus('Stopped', $timeout)
                }
            }
            elseif ($service.Status -ne [System.ServiceProcess.ServiceControllerStatus]::Running) {
                Start-Service -InputObject $service
                $service.WaitForStatus('Running', $timeout)
            }
        }
        catch {
            $service.Refresh()
            throw (New-AgentException -Message ("service '{0}' did not reach {1} within {2} s (status now {3}): {4}" -f $name, $state, $timeoutSeconds, [string]$service.Status, $_.Exception.Message))
        }
        $service.Refresh()
        $services += [ordered]@{
            name = $name
            previous_status = $previous
            status = [string]$service.Status
        }
    }
    if (($state -eq 'running') -and ($null -ne $recordPath) -and (Test-Path -LiteralPath $recordPath -PathType Leaf)) {
        Remove-Item -LiteralPath $recordPath -Force
    }
    return [ordered]@{
        services = $services
        recorded = @($recorded)
    }
}
