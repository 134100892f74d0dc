# The read ops of the shadowsnap.ec2 agent (docs/agent-protocol.md "Read operations"): facts, storage, writers and
# shadows, each a thin Select-Object of cmdlets and WMI/CIM classes or the raw text of a native tool (the read op
# sessions is with the session ops). A part of the agent script: agent_transport.py joins it into the frame
# (shadowsnap_agent.ps1), whose helpers it uses.

$ImdsTimeoutMs = 1000

# Partition types of dynamic disks: the GPT LDM metadata and data partitions, and the MBR LDM partition type.
$LdmGptTypes = @('{5808c8aa-7e8f-42e0-85d2-e1e90434cfb3}', '{af9b60a0-1431-4f62-bc68-3311714a69ad}')
$LdmMbrType = 66

# What the storage and shadows ops return: raw properties, by the names of the cmdlets and classes they come from.
# Calculated properties only turn a [char] drive letter into text, a WMI reference into the volume id it names and a
# DateTime into WMI (DMTF) text; their script blocks call functions defined below, at the time they run.
$DriveLetterProperty = @{ Name = 'DriveLetter'; Expression = { ConvertTo-DriveLetter $_.DriveLetter } }
$DiskProperties = @(
    'Number', 'SerialNumber', 'AdapterSerialNumber', 'FriendlyName', 'Manufacturer', 'Model', 'BusType',
    'PartitionStyle', 'OperationalStatus', 'HealthStatus', 'IsOffline', 'OfflineReason', 'IsReadOnly', 'IsBoot',
    'IsSystem', 'IsClustered', 'Size', 'Location', 'Path', 'UniqueId', 'Guid', 'Signature'
)
$DiskDriveProperties = @(
    'Index', 'DeviceID', 'Caption', 'Model', 'SerialNumber', 'InterfaceType', 'SCSIPort', 'SCSIBus', 'SCSITargetId',
    'SCSILogicalUnit', 'PNPDeviceID', 'Size'
)
$PartitionProperties = @(
    'DiskNumber', 'PartitionNumber', $DriveLetterProperty, 'AccessPaths', 'Offset', 'Size', 'Type', 'GptType',
    'MbrType', 'IsBoot', 'IsSystem', 'IsHidden', 'IsOffline', 'IsReadOnly'
)
$VolumeProperties = @(
    'UniqueId', 'Path', $DriveLetterProperty, 'FileSystem', 'FileSystemLabel', 'DriveType', 'HealthStatus', 'Size',
    'SizeRemaining'
)
$ShadowStorageProperties = @(
    @{ Name = 'Volume'; Expression = { Get-Property $_.Volume 'DeviceID' } },
    @{ Name = 'DiffVolume'; Expression = { Get-Property $_.DiffVolume 'DeviceID' } },
    'UsedSpace', 'AllocatedSpace', 'MaxSpace'
)
$PhysicalDiskProperties = @(
    'DeviceId', 'SerialNumber', 'AdapterSerialNumber', 'FriendlyName', 'Model', 'BusType', 'Size', 'UniqueId'
)
$ShadowCopyProperties = @(
    'ID', 'SetID', 'VolumeName', 'DeviceObject', @{ Name = 'InstallDate'; Expression = { ConvertTo-DmtfDate $_.InstallDate } },
    'Count', 'ClientAccessible', 'Persistent', 'NoAutoRelease', 'NoWriters', 'Differential', 'ExposedLocally',
    'ExposedRemotely', 'ExposedName', 'ExposedPath', 'HardwareAssisted', 'Imported', 'Plex', 'Transportable',
    'ProviderID', 'OriginatingMachine', 'ServiceMachine', 'State'
)

function Invoke-Imds {
    # One IMDS request with short timeouts and no proxy (IMDS is link-local).
    param($Method, $Path, $Headers)
    $request = [System.Net.WebRequest]::Create('http://169.254.169.254' + $Path)
    $request.Method = $Method
    $request.Timeout = $ImdsTimeoutMs
    $request.ReadWriteTimeout = $ImdsTimeoutMs
    $request.Proxy = $null
    foreach ($headerName in @($Headers.Keys)) {
        $request.Headers.Add($headerName, [string]$Headers[$headerName])
    }
    if ($Method -eq 'PUT') {
        $request.ContentLength = 0
    }
    $response = $request.GetResponse()
    try {
        $stream = $response.GetResponseStream()
        $reader = New-Object -TypeName System.IO.StreamReader -ArgumentList @($stream, [System.Text.Encoding]::UTF8)
        return $reader.ReadToEnd()
    }
    finally {
        $response.Close()
    }
}

function Get-Ec2Identity {
    # IMDSv2: a session token, then the instance identity document; null when IMDS does not answer.
    try {
        $token = Invoke-Imds -Method 'PUT' -Path '/latest/api/token' -Headers @{ 'X-aws-ec2-metadata-token-ttl-seconds' = '60' }
        $document = Invoke-Imds -Method 'GET' -Path '/latest/dynamic/instance-identity/document' -Headers @{ 'X-aws-ec2-metadata-token' = $token }
        $identity = ConvertFrom-Json -InputObject $document
        return [ordered]@{
            instance_id = (Get-Property $identity 'instanceId')
            region = (Get-Property $identity 'region')
            availability_zone = (Get-Property $identity 'availabilityZone')
            account_id = (Get-Property $identity 'accountId')
            instance_type = (Get-Property $identity 'instanceType')
        }
    }
    catch {
        return $null
    }
}

function Get-AwsVssComponentsVersion {
    $roots = @(
        'HKLM:\SOFTWARE\Microsoft\Windows\CurrentVersion\Uninstall',
        'HKLM:\SOFTWARE\WOW6432Node\Microsoft\Windows\CurrentVersion\Uninstall'
    )
    foreach ($root in $roots) {
        foreach ($key in @(Get-ChildItem -LiteralPath $root -ErrorAction SilentlyContinue)) {
            $entry = Get-ItemProperty -LiteralPath $key.PSPath -ErrorAction SilentlyContinue
            $displayName = [string](Get-Property $entry 'DisplayName' '')
            if ($displayName -match 'Aws\s*Vss') {
                return [string](Get-Property $entry 'DisplayVersion' '')
            }
        }
    }
    $agent = Join-Path $env:ProgramFiles 'Amazon\AwsVssComponents\ec2-vss-agent.exe'
    if (Test-Path -LiteralPath $agent) {
        return [string](Get-Item -LiteralPath $agent).VersionInfo.FileVersion
    }
    return $null
}

function Get-FactsResult {
    $os = Get-CimInstance -ClassName Win32_OperatingSystem
    $productType = [int]$os.ProductType
    return [ordered]@{
        hostname = $env:COMPUTERNAME
        os_caption = [string]$os.Caption
        os_version = [string]$os.Version
        os_build = [string]$os.BuildNumber
        os_edition = (Get-RegistryValue 'HKLM:\SOFTWARE\Microsoft\Windows NT\CurrentVersion' 'EditionID')
        product_type = $productType
        is_server = ($productType -ne 1)
        powershell_version = $PSVersionTable.PSVersion.ToString()
        ui_culture = [System.Globalization.CultureInfo]::CurrentUICulture.Name
        oem_code_page = (Get-OemCodePage)
        ansi_code_page = (Get-AnsiCodePage)
        diskshadow_present = (Test-Path -LiteralPath (Join-Path $SystemDir 'diskshadow.exe'))
        aws_vss_components_version = (Get-AwsVssComponentsVersion)
        ec2 = (Get-Ec2Identity)
    }
}

function ConvertTo-DriveLetter {
    # Get-Partition and Get-Volume give a [char], NUL when there is no letter.
    param($Value)
    if ($null -eq $Value) {
        return $null
    }
    $text = ([string]$Value).Trim([char]0).Trim()
    if ($text.Length -eq 0) {
        return $null
    }
    return $text
}

function Test-FixedDrive {
    param($DriveType)
    $text = [string]$DriveType
    return (($text -eq 'Fixed') -or ($text -eq '3'))
}

function Get-VolumeExtentsType {
    # The C# helper (VolumeExtents.cs, carried as $VolumeExtentsSource), compiled only when dynamic disks exist.
    $existing = 'ShadowsnapAgent.VolumeExtents' -as [type]
    if ($null -ne $existing) {
        return $existing
    }
    return (Add-Type -TypeDefinition $VolumeExtentsSource -PassThru | Where-Object { $_.FullName -eq 'ShadowsnapAgent.VolumeExtents' })
}

function Get-DynamicDisks {
    # Volumes that live on no basic partition, by the disk numbers of their extents; nothing without LDM partitions.
    param($Partitions, $Volumes)
    $ldm = @($Partitions | Where-Object { ($LdmGptTypes -contains ([string]$_.GptType).ToLowerInvariant()) -or ($_.MbrType -eq $LdmMbrType) })
    if ($ldm.Count -eq 0) {
        return
    }
    $onPartitions = @{}
    foreach ($partition in $Partitions) {
        foreach ($path in $partition.AccessPaths) {
            if ($path) {
                $onPartitions[([string]$path).ToLowerInvariant()] = $true
            }
        }
    }
    $extentsType = Get-VolumeExtentsType
    $byDisk = [ordered]@{}
    foreach ($volume in $Volumes) {
        $uniqueId = [string]$volume.UniqueId
        if ((-not $uniqueId) -or $onPartitions.ContainsKey($uniqueId.ToLowerInvariant())) {
            continue
        }
        if (-not (Test-FixedDrive $volume.DriveType)) {
            continue
        }
        foreach ($number in $extentsType::DiskNumbers($uniqueId.TrimEnd('\'))) {
            $key = [string]$number
            if (-not $byDisk.Contains($key)) {
                $byDisk[$key] = New-Object -TypeName System.Collections.ArrayList
            }
            if (-not $byDisk[$key].Contains($uniqueId)) {
                [void]$byDisk[$key].Add($uniqueId)
            }
        }
    }
    foreach ($key in @($byDisk.Keys)) {
        [pscustomobject]@{
            DiskNumber = [int]$key
            VolumeUniqueIds = @($byDisk[$key])
        }
    }
}

function Get-StoragePools {
    # Storage Spaces pools (not the primordial one): member disks, virtual disks and the volumes on them.
    if (-not (Get-Command -Name Get-StoragePool -ErrorAction SilentlyContinue)) {
        return
    }
    foreach ($pool in @(Get-StoragePool -IsPrimordial $false -ErrorAction SilentlyContinue)) {
        $physicalDisks = @($pool | Get-PhysicalDisk | Select-Object -Property $PhysicalDiskProperties)
        $virtualDisks = @($pool | Get-VirtualDisk)
        $physicalNumbers = @()
        foreach ($physicalDisk in $physicalDisks) {
            $deviceId = [string]$physicalDisk.DeviceId
            if ($deviceId -match '^\d+$') {
                $physicalNumbers += [int]$deviceId
            }
        }
        $virtualNames = @()
        $virtualNumbers = @()
        $volumeIds = @()
        foreach ($virtualDisk in $virtualDisks) {
            $virtualNames += [string]$virtualDisk.FriendlyName
            foreach ($disk in @($virtualDisk | Get-Disk -ErrorAction SilentlyContinue)) {
                $virtualNumbers += [int]$disk.Number
                foreach ($partition in @($disk | Get-Partition -ErrorAction SilentlyContinue)) {
                    foreach ($volume in @($partition | Get-Volume -ErrorAction SilentlyContinue)) {
                        $volumeIds += [string]$volume.UniqueId
                    }
                }
            }
        }
        [pscustomobject]@{
            FriendlyName = [string]$pool.FriendlyName
            UniqueId = [string]$pool.UniqueId
            PhysicalDiskNumbers = $physicalNumbers
            PhysicalDisks = $physicalDisks
            VirtualDisks = $virtualNames
            VirtualDiskNumbers = $virtualNumbers
            VolumeUniqueIds = $volumeIds
        }
    }
}

function Get-StorageResult {
    $disks = @(Get-Disk | Select-Object -Property $DiskProperties)
    $diskDrives = @(Get-CimInstance -ClassName Win32_DiskDrive | Select-Object -Property $DiskDriveProperties)
    $partitions = @(Get-Partition | Select-Object -Property $PartitionProperties)
    $volumes = @(Get-Volume | Select-Object -Property $VolumeProperties)
    $shadowStorage = @(Get-CimInstance -ClassName Win32_ShadowStorage | Select-Object -Property $ShadowStorageProperties)
    $dynamicDisks = @(Get-DynamicDisks -Partitions $partitions -Volumes $volumes)
    $storagePools = @(Get-StoragePools)
    return [ordered]@{
        disks = $disks
        disk_drives = $diskDrives
        partitions = $partitions
        volumes = $volumes
        shadow_storage = $shadowStorage
        dynamic_disks = $dynamicDisks
        storage_pools = $storagePools
    }
}

function Get-WritersResult {
    param($OpArgs)
    $sources = @(Get-Property $OpArgs 'sources' @('vssadmin'))
    if ($sources.Count -eq 0) {
        $sources = @('vssadmin')
    }
    $codePage = Get-OemCodePage
    $outputs = [ordered]@{}
    foreach ($source in $sources) {
        $name = [string]$source
        $run = $null
        if ($name -eq 'vssadmin') {
            $run = Invoke-Native -FilePath (Join-Path $SystemDir 'vssadmin.exe') -ArgumentList @('list', 'writers') -CodePage $codePage
        }
        elseif ($name -eq 'diskshadow_status') {
            $run = Invoke-DiskShadow -ScriptLines @('list writers status') -CodePage $codePage
        }
        elseif ($name -eq 'diskshadow_detailed') {
            $run = Invoke-DiskShadow -ScriptLines @('list writers status', 'list writers detailed') -CodePage $codePage
        }
        else {
            throw (New-AgentException -Message "unknown writers source '$name' (known: vssadmin, diskshadow_status, diskshadow_detailed)")
        }
        Assert-NativeSuccess $run
        $outputs[$name] = $run
    }
    return [ordered]@{
        oem_code_page = $codePage
        outputs = $outputs
    }
}

function ConvertTo-DmtfDate {
    # CIM gives a DateTime; the protocol carries the WMI (DMTF) text in UTC, as Get-WmiObject prints it.
    param($Value)
    if ($null -eq $Value) {
        return $null
    }
    if ($Value -is [datetime]) {
        return $Value.ToUniversalTime().ToString('yyyyMMddHHmmss.ffffff', [System.Globalization.CultureInfo]::InvariantCulture) + '+000'
    }
    return [string]$Value
}

function Get-ShadowsResult {
    $shadows = @(Get-CimInstance -ClassName Win32_ShadowCopy | Select-Object -Property $ShadowCopyProperties)
    return [ordered]@{
        shadows = $shadows
    }
}
